"""Mechanisms every stage shares: settings, storage, engine, markers, schemas, text, tar samples."""
