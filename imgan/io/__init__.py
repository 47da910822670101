"""Reading and writing of images, batches of files and videos."""
import os as _os

# OpenCV and the libav inside it print their own lines (warnings, "moov atom not found", ...)
# before the one-line error imgan gives about the same file; quiet unless the user asks for them.
# Both are read lazily (first log line, first video opened), so setting them on import is early enough.
_os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
_os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET

# Here, not in images.py, so the CLI can show the default without importing NumPy and Pillow.
DEFAULT_MAX_PIXELS = 200_000_000
