"""Cascade: continuous promotion for Heroku Pipelines."""
