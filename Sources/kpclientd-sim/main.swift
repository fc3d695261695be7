print("kpclientd-sim: not yet implemented")
