"""Placeholder router of the read API, filled in by its own issue."""

from fastapi import APIRouter

router = APIRouter(prefix="/v1/tenants/{tenant_id}")
