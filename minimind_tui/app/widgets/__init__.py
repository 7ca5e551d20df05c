"""One widget per module. Chat and Dataset tabs are owned by their own modules (chat_tab.py, dataset_tab.py)."""
