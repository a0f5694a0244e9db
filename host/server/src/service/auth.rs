//! The Auth service: turning auth on and off, logging in, and managing users and roles, with
//! etcd's rules. Changes are proposed through Raft (passwords hashed here first, so apply never
//! runs bcrypt); reads answer from this member's state after a linearizable read. With auth on,
//! everything but Authenticate and AuthStatus is root's, except changing one's own password.

use std::sync::Arc;

use conclave_proto::conclavepb::{
    AuthChanged, AuthCommand, auth_command::Request as Cmd, command::Request as Command,
};
use conclave_proto::etcdserverpb::{
    AuthDisableRequest, AuthDisableResponse, AuthEnableRequest, AuthEnableResponse,
    AuthRoleAddRequest, AuthRoleAddResponse, AuthRoleDeleteRequest, AuthRoleDeleteResponse,
    AuthRoleGetRequest, AuthRoleGetResponse, AuthRoleGrantPermissionRequest,
    AuthRoleGrantPermissionResponse, AuthRoleListRequest, AuthRoleListResponse,
    AuthRoleRevokePermissionRequest, AuthRoleRevokePermissionResponse, AuthStatusRequest,
    AuthStatusResponse, AuthUserAddRequest, AuthUserAddResponse, AuthUserChangePasswordRequest,
    AuthUserChangePasswordResponse, AuthUserDeleteRequest, AuthUserDeleteResponse,
    AuthUserGetRequest, AuthUserGetResponse, AuthUserGrantRoleRequest, AuthUserGrantRoleResponse,
    AuthUserListRequest, AuthUserListResponse, AuthUserRevokeRoleRequest,
    AuthUserRevokeRoleResponse, AuthenticateRequest, AuthenticateResponse, ResponseHeader,
    auth_server::Auth,
};
use conclave_store::RequestError;
use tonic::{Request, Response, Status};

use crate::auth::{self, Caller};
use crate::error::{answer, request_status};
use crate::node::Node;

#[derive(Clone)]
pub struct AuthService {
    node: Arc<Node>,
}

impl AuthService {
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }

    /// The caller, who must be root (anyone while auth is off).
    fn root<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        let caller = self.node.auth.caller(request)?;
        caller.require_root()?;
        Ok(caller)
    }

    /// Proposes an auth change; answers the response header after it.
    async fn change(
        &self,
        request: Cmd,
        token_key: Vec<u8>,
    ) -> Result<Option<ResponseHeader>, Status> {
        let applied = self
            .node
            .router
            .propose(Command::Auth(AuthCommand {
                request: Some(request),
                token_key,
            }))
            .await?;
        let (_, revision): (AuthChanged, i64) = answer(applied)?;
        Ok(self.node.header(revision))
    }

    /// A root-only change made of the request's message as it is.
    async fn admin<T>(
        &self,
        request: Request<T>,
        command: impl FnOnce(T) -> Cmd,
    ) -> Result<Option<ResponseHeader>, Status> {
        self.root(&request)?;
        self.change(command(request.into_inner()), Vec::new()).await
    }

    /// A read of the auth state that sees every change acknowledged before it began.
    async fn read<T>(
        &self,
        request: &Request<T>,
    ) -> Result<Arc<conclave_store::AuthState>, Status> {
        self.root(request)?;
        self.node.router.linearize().await?;
        Ok(self.node.store.auth())
    }

    fn header(&self) -> Option<ResponseHeader> {
        self.node.header(self.node.store.current_revision())
    }
}

#[tonic::async_trait]
impl Auth for AuthService {
    async fn auth_enable(
        &self,
        request: Request<AuthEnableRequest>,
    ) -> Result<Response<AuthEnableResponse>, Status> {
        self.root(&request)?;
        let header = self
            .change(Cmd::Enable(AuthEnableRequest {}), auth::new_token_key()?)
            .await?;
        Ok(Response::new(AuthEnableResponse { header }))
    }

    async fn auth_disable(
        &self,
        request: Request<AuthDisableRequest>,
    ) -> Result<Response<AuthDisableResponse>, Status> {
        self.root(&request)?;
        let header = self
            .change(Cmd::Disable(AuthDisableRequest {}), Vec::new())
            .await?;
        Ok(Response::new(AuthDisableResponse { header }))
    }

    async fn auth_status(
        &self,
        _: Request<AuthStatusRequest>,
    ) -> Result<Response<AuthStatusResponse>, Status> {
        self.node.router.linearize().await?;
        let state = self.node.store.auth();
        Ok(Response::new(AuthStatusResponse {
            header: self.header(),
            enabled: state.enabled,
            auth_revision: state.revision,
        }))
    }

    async fn authenticate(
        &self,
        request: Request<AuthenticateRequest>,
    ) -> Result<Response<AuthenticateResponse>, Status> {
        let req = request.into_inner();
        // A user added just before must be known here.
        self.node.router.linearize().await?;
        let token = self
            .node
            .auth
            .authenticate(&req.name, &req.password)
            .await?;
        Ok(Response::new(AuthenticateResponse {
            header: self.header(),
            token,
        }))
    }

    async fn user_add(
        &self,
        request: Request<AuthUserAddRequest>,
    ) -> Result<Response<AuthUserAddResponse>, Status> {
        self.root(&request)?;
        let mut req = request.into_inner();
        if req.name.is_empty() {
            return Err(request_status(&RequestError::UserEmpty));
        }
        let no_password = req.options.is_some_and(|o| o.no_password);
        req.hashed_password = if no_password {
            String::new()
        } else {
            self.node
                .auth
                .hash_password(std::mem::take(&mut req.password))
                .await?
        };
        req.password.clear();
        let header = self.change(Cmd::UserAdd(req), Vec::new()).await?;
        Ok(Response::new(AuthUserAddResponse { header }))
    }

    async fn user_get(
        &self,
        request: Request<AuthUserGetRequest>,
    ) -> Result<Response<AuthUserGetResponse>, Status> {
        let state = self.read(&request).await?;
        let name = request.into_inner().name;
        let user = state
            .users
            .get(&name)
            .ok_or_else(|| request_status(&RequestError::UserNotFound))?;
        Ok(Response::new(AuthUserGetResponse {
            header: self.header(),
            roles: user.roles.clone(),
        }))
    }

    async fn user_list(
        &self,
        request: Request<AuthUserListRequest>,
    ) -> Result<Response<AuthUserListResponse>, Status> {
        let state = self.read(&request).await?;
        Ok(Response::new(AuthUserListResponse {
            header: self.header(),
            users: state.users.keys().cloned().collect(),
        }))
    }

    async fn user_delete(
        &self,
        request: Request<AuthUserDeleteRequest>,
    ) -> Result<Response<AuthUserDeleteResponse>, Status> {
        let header = self.admin(request, Cmd::UserDelete).await?;
        Ok(Response::new(AuthUserDeleteResponse { header }))
    }

    async fn user_change_password(
        &self,
        request: Request<AuthUserChangePasswordRequest>,
    ) -> Result<Response<AuthUserChangePasswordResponse>, Status> {
        let caller = self.node.auth.caller(&request)?;
        let mut req = request.into_inner();
        // Root changes anyone's; a user its own.
        if caller.user() != Some(req.name.as_str()) {
            caller.require_root()?;
        }
        req.hashed_password = self
            .node
            .auth
            .hash_password(std::mem::take(&mut req.password))
            .await?;
        let header = self
            .change(Cmd::UserChangePassword(req), Vec::new())
            .await?;
        Ok(Response::new(AuthUserChangePasswordResponse { header }))
    }

    async fn user_grant_role(
        &self,
        request: Request<AuthUserGrantRoleRequest>,
    ) -> Result<Response<AuthUserGrantRoleResponse>, Status> {
        let header = self.admin(request, Cmd::UserGrantRole).await?;
        Ok(Response::new(AuthUserGrantRoleResponse { header }))
    }

    async fn user_revoke_role(
        &self,
        request: Request<AuthUserRevokeRoleRequest>,
    ) -> Result<Response<AuthUserRevokeRoleResponse>, Status> {
        let header = self.admin(request, Cmd::UserRevokeRole).await?;
        Ok(Response::new(AuthUserRevokeRoleResponse { header }))
    }

    async fn role_add(
        &self,
        request: Request<AuthRoleAddRequest>,
    ) -> Result<Response<AuthRoleAddResponse>, Status> {
        let header = self.admin(request, Cmd::RoleAdd).await?;
        Ok(Response::new(AuthRoleAddResponse { header }))
    }

    async fn role_get(
        &self,
        request: Request<AuthRoleGetRequest>,
    ) -> Result<Response<AuthRoleGetResponse>, Status> {
        let state = self.read(&request).await?;
        let name = request.into_inner().role;
        let role = state
            .roles
            .get(&name)
            .ok_or_else(|| request_status(&RequestError::RoleNotFound))?;
        Ok(Response::new(AuthRoleGetResponse {
            header: self.header(),
            perm: role.key_permission.clone(),
        }))
    }

    async fn role_list(
        &self,
        request: Request<AuthRoleListRequest>,
    ) -> Result<Response<AuthRoleListResponse>, Status> {
        let state = self.read(&request).await?;
        Ok(Response::new(AuthRoleListResponse {
            header: self.header(),
            roles: state.roles.keys().cloned().collect(),
        }))
    }

    async fn role_delete(
        &self,
        request: Request<AuthRoleDeleteRequest>,
    ) -> Result<Response<AuthRoleDeleteResponse>, Status> {
        let header = self.admin(request, Cmd::RoleDelete).await?;
        Ok(Response::new(AuthRoleDeleteResponse { header }))
    }

    async fn role_grant_permission(
        &self,
        request: Request<AuthRoleGrantPermissionRequest>,
    ) -> Result<Response<AuthRoleGrantPermissionResponse>, Status> {
        let header = self.admin(request, Cmd::RoleGrantPermission).await?;
        Ok(Response::new(AuthRoleGrantPermissionResponse { header }))
    }

    async fn role_revoke_permission(
        &self,
        request: Request<AuthRoleRevokePermissionRequest>,
    ) -> Result<Response<AuthRoleRevokePermissionResponse>, Status> {
        let header = self.admin(request, Cmd::RoleRevokePermission).await?;
        Ok(Response::new(AuthRoleRevokePermissionResponse { header }))
    }
}
