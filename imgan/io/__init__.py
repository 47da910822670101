"""Reading and writing of images, batches of files and videos."""

# Here, not in images.py, so the CLI can show the default without importing NumPy and Pillow.
DEFAULT_MAX_PIXELS = 200_000_000
