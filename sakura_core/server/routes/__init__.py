"""The routes: what each route reads and answers, the shared generation handler, the schemas and OpenAPI."""
