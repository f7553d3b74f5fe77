"""The isolation core: the registry of tenants, where each one's store lives, the scope work runs
in, who may enter a tenant, and the scoped sessions and bounded connections through which every
read and write of tenant data goes. Features built on it (tenant data, people, modules, usage,
settings) live in their own packages and import this one, never the other way."""
