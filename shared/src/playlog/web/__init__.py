"""FastAPI plumbing shared by the api and frontend services."""
