"""Built-in source adapters. Each module is a plugin registered through the ``dam_dedupe`` entry-point group."""
