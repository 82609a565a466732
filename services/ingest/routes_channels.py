"""Placeholder router of the write API, filled in by its own issue."""

from fastapi import APIRouter

router = APIRouter(prefix="/v1/tenants/{tenant_id}")
