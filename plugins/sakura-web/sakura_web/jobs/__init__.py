"""File translation jobs: uploads translated by ``sakura translate``'s pipeline inside the server."""
