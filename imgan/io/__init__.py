"""Reading and writing of images, batches of files and videos."""
