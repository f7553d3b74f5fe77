"""Provisioning: building a tenant's store through the four layers, as steps of a job."""
