"""Runs the official Python SDK's generate() against a Magic Hour API (the mhfs mock).

usage: python generate.py BASE_URL INPUT_DIR OUTPUT_DIR
INPUT_DIR holds photo.png, face.png, clip.mp4 and voice.wav. Each tool downloads into
OUTPUT_DIR/<tool>/. Prints one JSON line per tool and exits non-zero if any call raised.
"""

import json
import os
import sys
import traceback

from magic_hour import Client

base_url, inputs, outputs = sys.argv[1:4]
os.environ.setdefault("MAGIC_HOUR_POLL_INTERVAL", "0.05")
client = Client(token="sdk-test-token", base_url=base_url)
v1 = client.v1


def inp(name):
    return os.path.join(inputs, name)


CALLS = {
    "ai-image-generator": lambda d: v1.ai_image_generator.generate(
        image_count=2, style={"prompt": "a lighthouse at dawn"}, download_directory=d
    ),
    "ai-image-upscaler": lambda d: v1.ai_image_upscaler.generate(
        assets={"image_file_path": inp("photo.png")}, scale_factor=2, download_directory=d
    ),
    "image-background-remover": lambda d: v1.image_background_remover.generate(
        assets={"image_file_path": inp("photo.png")}, download_directory=d
    ),
    "face-swap-photo": lambda d: v1.face_swap_photo.generate(
        assets={"source_file_path": inp("face.png"), "target_file_path": inp("photo.png")},
        download_directory=d,
    ),
    "face-swap": lambda d: v1.face_swap.generate(
        assets={
            "image_file_path": inp("face.png"),
            "video_file_path": inp("clip.mp4"),
            "video_source": "file",
        },
        start_seconds=0,
        end_seconds=2,
        download_directory=d,
    ),
    "lip-sync": lambda d: v1.lip_sync.generate(
        assets={
            "audio_file_path": inp("voice.wav"),
            "video_file_path": inp("clip.mp4"),
            "video_source": "file",
        },
        start_seconds=0,
        end_seconds=2,
        download_directory=d,
    ),
    "image-to-video": lambda d: v1.image_to_video.generate(
        assets={"image_file_path": inp("photo.png")}, end_seconds=5, download_directory=d
    ),
    "ai-voice-generator": lambda d: v1.ai_voice_generator.generate(
        style={"prompt": "Hello from the mock", "voice_name": "Morgan Freeman"},
        download_directory=d,
    ),
}

failed = 0
for tool, call in CALLS.items():
    directory = os.path.join(outputs, tool)
    os.makedirs(directory, exist_ok=True)
    try:
        result = call(directory)
        print(json.dumps({"tool": tool, "status": result.status, "id": result.id,
                          "downloaded_paths": list(result.downloaded_paths)}), flush=True)
    except Exception as e:  # report every tool, then fail
        failed += 1
        traceback.print_exc()
        print(json.dumps({"tool": tool, "error": repr(e)}), flush=True)
sys.exit(1 if failed else 0)
