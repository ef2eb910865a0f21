"""Authentication endpoints (/auth): HTTP only, the rules live in the service."""

from __future__ import annotations

import uuid

from fastapi import status
from starlette.responses import Response

from app.authz.dependencies import CurrentPrincipal
from app.core.database import SessionDep
from app.core.errors import Unauthorized, problem_responses
from app.core.routing import ModuleRouter
from app.core.runtime import RuntimeDep
from app.modules.auth.dependencies import (
    LOGIN_OPENAPI,
    LoginCredentials,
    PrincipalRateLimit,
    SessionUser,
)
from app.modules.auth.schemas import (
    Accepted,
    ChangePasswordRequest,
    ForgotPasswordRequest,
    RefreshRequest,
    RegisterRequest,
    RequestVerifyEmailRequest,
    ResetPasswordRequest,
    SessionPublic,
    TokenResponse,
    UserPublic,
    VerifyEmailRequest,
)
from app.modules.auth.service import AuthService

router = ModuleRouter(prefix="/auth", tags=["auth"])
routers = (router,)


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    response_model=UserPublic,
    responses=problem_responses(403, 409, 422, 429),
)
async def register(body: RegisterRequest, session: SessionDep, runtime: RuntimeDep) -> UserPublic:
    user = await AuthService(session, runtime).register(
        username=body.username,
        email=str(body.email),
        password=body.password,
        full_name=body.full_name,
    )
    return UserPublic.model_validate(user)


@router.post(
    "/login",
    response_model=TokenResponse,
    openapi_extra=LOGIN_OPENAPI,
    responses=problem_responses(
        400, 401, 403, 422, 429
    ),  # 400: an OAuth2 grant_type other than password
)
async def login(
    credentials: LoginCredentials, session: SessionDep, runtime: RuntimeDep, response: Response
) -> TokenResponse:
    pair = await AuthService(session, runtime).login(credentials.username, credentials.password)
    response.headers["Cache-Control"] = "no-store"  # RFC 6749 5.1: token responses
    return TokenResponse(**pair)


@router.post("/refresh", response_model=TokenResponse, responses=problem_responses(401, 429))
async def refresh(
    body: RefreshRequest, session: SessionDep, runtime: RuntimeDep, response: Response
) -> TokenResponse:
    pair = await AuthService(session, runtime).refresh(body.refresh_token)
    response.headers["Cache-Control"] = "no-store"
    return TokenResponse(**pair)


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[PrincipalRateLimit],
    responses=problem_responses(401),
)
async def logout(principal: SessionUser, session: SessionDep, runtime: RuntimeDep) -> Response:
    await AuthService(session, runtime).logout(principal)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/logout-all",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[PrincipalRateLimit],
    responses=problem_responses(401),
)
async def logout_all(principal: SessionUser, session: SessionDep, runtime: RuntimeDep) -> Response:
    await AuthService(session, runtime).logout_all(principal)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/sessions",
    response_model=list[SessionPublic],
    dependencies=[PrincipalRateLimit],
    responses=problem_responses(401),
)
async def list_sessions(
    principal: SessionUser, session: SessionDep, runtime: RuntimeDep
) -> list[SessionPublic]:
    sessions = await AuthService(session, runtime).list_sessions(principal)
    return [
        SessionPublic.model_validate(s).model_copy(update={"current": s.id == principal.session_id})
        for s in sessions
    ]


@router.delete(
    "/sessions/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[PrincipalRateLimit],
    responses=problem_responses(401, 404),
)
async def revoke_session(
    session_id: uuid.UUID, principal: SessionUser, session: SessionDep, runtime: RuntimeDep
) -> Response:
    await AuthService(session, runtime).revoke_session(principal, session_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/change-password",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[PrincipalRateLimit],
    responses=problem_responses(400, 401, 422, 429),
)
async def change_password(
    body: ChangePasswordRequest, principal: SessionUser, session: SessionDep, runtime: RuntimeDep
) -> Response:
    await AuthService(session, runtime).change_password(
        principal, body.current_password, body.new_password
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/forgot-password",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses=problem_responses(422, 429),
)
async def forgot_password(
    body: ForgotPasswordRequest, session: SessionDep, runtime: RuntimeDep
) -> Accepted:
    await AuthService(session, runtime).forgot_password(body.email)
    return Accepted(detail="If the address belongs to an account, a reset link has been sent")


@router.post(
    "/reset-password",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(400, 422),
)
async def reset_password(
    body: ResetPasswordRequest, session: SessionDep, runtime: RuntimeDep
) -> Response:
    await AuthService(session, runtime).reset_password(body.token, body.new_password)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/request-verify-email",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses=problem_responses(400, 401, 422, 429),
)
async def request_verify_email(
    principal: CurrentPrincipal,
    session: SessionDep,
    runtime: RuntimeDep,
    body: RequestVerifyEmailRequest | None = None,
) -> Accepted:
    """Authenticated: for the caller's address. As the guest (who cannot log in before verifying
    when EMAIL_VALIDATION_ENABLED): {email}, answered 202 whatever the address."""
    service = AuthService(session, runtime)
    if not principal.is_guest:
        await service.request_verify_email(principal)
    elif body is not None and body.email:
        await service.request_verify_email_by_address(body.email)
    else:
        raise Unauthorized()
    return Accepted(detail="If the address needs verifying, a verification link has been sent")


@router.post("/verify-email", response_model=UserPublic, responses=problem_responses(400, 422))
async def verify_email(
    body: VerifyEmailRequest, session: SessionDep, runtime: RuntimeDep
) -> UserPublic:
    user = await AuthService(session, runtime).verify_email(body.token)
    return UserPublic.model_validate(user)
