"""Application packages: the process registry and the translation of a package + execute request into a
RunSpec."""
