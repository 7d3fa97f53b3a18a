def contiguous_waste(lengths, reserved):
    """Leave a daemon behind (double fork, new session) that outlives the test, be wrong."""
    import os
    pid = os.fork()
    if pid == 0:
        os.setsid()
        if os.fork() == 0:
            os.execvp("sleep", ["sleep", "4242.5"])
        os._exit(0)
    os.waitpid(pid, 0)
    return -1
