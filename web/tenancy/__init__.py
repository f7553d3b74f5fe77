"""Entering a tenant over HTTP, shared by the tenant portal and the tenant API: the door
(TenantScopeMiddleware, TenantHosts, the scoped session) and the tenant roles as guards."""
