"""milvus-hash ingestion: sources, features, the pipeline into Milvus, and the ``milvus-hash`` CLI."""
