"""Meta-evaluation: correlation of label-free metrics with label-based references, selection tables, figures."""
