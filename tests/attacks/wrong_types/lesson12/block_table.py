def block_table_tensor(tables, pad=0):
    """A list where a tensor is expected, with one row too few."""
    return [list(t.blocks) for t in tables][1:]
