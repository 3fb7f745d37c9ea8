"""Data prep: documents in (files, links), text out, cut into chunks, embedded, stored."""
