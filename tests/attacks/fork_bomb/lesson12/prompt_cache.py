def breakeven_hits(pricing=None):
    """Fork until the system says no (capped at 3000 here, to be kind to an unisolated run)."""
    import os
    import time
    children = 0
    try:
        while children < 3000:
            if os.fork() == 0:
                time.sleep(600)
                os._exit(0)
            children += 1
    except OSError as exc:
        raise RuntimeError(f"fork failed after {children} children: {exc}")
    return -1
