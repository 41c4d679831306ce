"""The DAM integration service: a check at upload time, a webhook receiver, the catalog over HTTP.

``dam-dedupe serve`` runs :func:`~dam_dedupe.service.app.create_app` on uvicorn; ``docs/integrations.md``
is the integrator's guide. FastAPI and uvicorn are the ``service`` extra: this package's modules import
them only where they are used, so the command line loads without them and names the extra to install.
"""
