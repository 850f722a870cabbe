"""Checks of the Dockerfile, docker-compose.yml, deploy/nginx and terraform/ (README.md here)."""
