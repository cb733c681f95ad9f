"""Celery workers: thin tasks that adapt queue messages to `training/` calls and write results to SQL."""
