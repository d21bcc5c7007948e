"""The aiohttp application: ingest, reference data, health; built by `web.app.create_app`."""
