"""Built-in action plugins. Each module is a plugin registered through the ``dam_dedupe`` entry-point group."""
