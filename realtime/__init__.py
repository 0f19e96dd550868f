"""The realtime emotion program: camera frames in, faces found and classified, one line per frame out."""
