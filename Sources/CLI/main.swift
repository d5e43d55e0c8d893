print("elucidate")
