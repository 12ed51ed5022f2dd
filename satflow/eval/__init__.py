"""Distributed evaluation of codecs over a store: plan, tasks, metric reduction and report."""
