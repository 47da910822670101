"""Training and export. Imports torch; never imported by inference code."""
