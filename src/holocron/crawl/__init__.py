"""The crawl: fetching raw pages over HTTP into ``ingest.ingest_records``, through ``ingest.work_items``."""
