"""Media decoding, face detection and audio features."""
