"""HTTP: the Litestar app, its controllers, guards, middleware and templates."""
