"""Retrieval evaluation on BEIR-format data: loading, metrics and the runner behind ``holocron eval``."""

from holocron.eval.metrics import METRICS, mean_metrics, mrr_at_k, ndcg_at_k, query_metrics, recall_at_k

__all__ = ["METRICS", "mean_metrics", "mrr_at_k", "ndcg_at_k", "query_metrics", "recall_at_k"]
