"""Every picture and page: matplotlib figures and HTML, made in memory and returned as bytes or text;
the command line writes them (store.folders.write_files)."""
