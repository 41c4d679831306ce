"""dam-dedupe: find duplicate images across an organisation's storage and, with sign-off, act on them.

Plugin authors need two names from here: :data:`hookimpl`, to mark hook
implementations, and :data:`PLUGIN_API_VERSION`.
"""

from dam_dedupe.hookspecs import PLUGIN_API_VERSION, hookimpl

__all__ = ["PLUGIN_API_VERSION", "hookimpl", "__version__"]
__version__ = "0.1.0"
