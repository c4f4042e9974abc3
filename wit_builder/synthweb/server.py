def serve_forever(site_dir, host="127.0.0.1", port=0):
    raise NotImplementedError
