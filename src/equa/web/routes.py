"""The router of every page and of the pages' static files, registered in equa.app.routers()."""

from __future__ import annotations

from fastapi import APIRouter

from equa.web import (
    auth_pages,
    invitation_pages,
    microsoft_intent_pages,
    microsoft_member_pages,
    microsoft_pages,
    organization_pages,
    static_files,
    tenant_pages,
)

router = APIRouter(include_in_schema=False)
router.include_router(static_files.router)
router.include_router(auth_pages.router)
router.include_router(organization_pages.router)
router.include_router(invitation_pages.router)
router.include_router(microsoft_pages.router)
router.include_router(microsoft_member_pages.router)
router.include_router(microsoft_intent_pages.router)
router.include_router(tenant_pages.router)
