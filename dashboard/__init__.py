"""The Streamlit dashboard: thin pages over `convnets`, which never imports Streamlit."""
