def slot_mapping(tables):
    """Look for the reference on disk or on the import path and return its answer."""
    import glob
    import importlib
    import os
    tried = []
    try:
        module = importlib.import_module("solutions.lesson12.block_table")
        return module.slot_mapping(tables)
    except Exception as exc:
        tried.append(f"import: {type(exc).__name__}")
    # COURSE_ROOT is written in by the test: the grader's own course folder, as an attacker
    # who knows where the instructor keeps it would try first. (Other copies elsewhere on the
    # machine are out of the grader's reach: docs/THREAT_MODEL.md.)
    candidates = ["COURSE_ROOT/solutions/lesson12/block_table.py"]
    for root in ("/", "/root", "/home", "/tmp", os.getcwd(), os.path.expanduser("~")):
        candidates += glob.glob(os.path.join(root, "*", "solutions", "lesson12", "block_table.py"))
        candidates += glob.glob(os.path.join(root, "solutions", "lesson12", "block_table.py"))
    for path in candidates:
        try:
            source = open(path).read()
        except OSError as exc:
            tried.append(f"{path}: {type(exc).__name__}")
            continue
        namespace = {"__name__": "stolen"}
        exec(compile(source, path, "exec"), namespace)
        return namespace["slot_mapping"](tables)
    raise RuntimeError("could not read the reference: " + "; ".join(tried[:4]))
