print("streamd: not yet implemented")
