//! The JSON gateway on the client port, as etcd's grpc-gateway serves it: `POST /v3/<service>/
//! <method>` with the request message as proto3 JSON (bytes base64, int64 as strings, proto
//! field names), answered by the same handlers as gRPC; errors as `{"error","code","message"}`.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use conclave_proto::etcdserverpb::{
    AlarmRequest, AuthDisableRequest, AuthEnableRequest, AuthRoleAddRequest, AuthRoleDeleteRequest,
    AuthRoleGetRequest, AuthRoleGrantPermissionRequest, AuthRoleListRequest,
    AuthRoleRevokePermissionRequest, AuthStatusRequest, AuthUserAddRequest,
    AuthUserChangePasswordRequest, AuthUserDeleteRequest, AuthUserGetRequest,
    AuthUserGrantRoleRequest, AuthUserListRequest, AuthUserRevokeRoleRequest, AuthenticateRequest,
    CompactionRequest, DefragmentRequest, DeleteRangeRequest, HashKvRequest, HashRequest,
    LeaseGrantRequest, LeaseKeepAliveRequest, LeaseLeasesRequest, LeaseRevokeRequest,
    LeaseTimeToLiveRequest, MoveLeaderRequest, PutRequest, RangeRequest, StatusRequest, TxnRequest,
    WatchRequest, auth_server::Auth, kv_server::Kv, lease_server::Lease,
    maintenance_server::Maintenance,
};
use conclave_proto::v3electionpb::{
    CampaignRequest, LeaderRequest, ProclaimRequest, ResignRequest, election_server::Election,
};
use conclave_proto::v3lockpb::{LockRequest, UnlockRequest, lock_server::Lock};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::{Code, Status};

use crate::auth;
use crate::limits::RequestLimits;
use crate::node::Node;
use crate::service::{
    AuthService, ElectionService, KvService, LeaseService, LockService, MaintenanceService,
    WatchService,
};

#[derive(Clone)]
pub struct Gateway {
    pub node: Arc<Node>,
    pub auth: AuthService,
    pub kv: KvService,
    pub maintenance: MaintenanceService,
    pub lease: LeaseService,
    pub lock: LockService,
    pub election: ElectionService,
    pub watch: WatchService,
}

/// A unary route: the JSON body becomes the request, the service's answer the JSON reply.
macro_rules! unary_handler {
    ($name:ident, $service:ident . $method:ident, $request:ty) => {
        async fn $name(
            State(g): State<Gateway>,
            headers: HeaderMap,
            JsonBody(body): JsonBody,
        ) -> Response {
            unary(&headers, body, |r: tonic::Request<$request>| async move {
                g.$service.$method(r).await
            })
            .await
        }
    };
}

pub fn router(gateway: Gateway) -> Router {
    Router::new()
        .route("/v3/kv/range", post(range))
        .route("/v3/kv/put", post(put))
        .route("/v3/kv/deleterange", post(delete_range))
        .route("/v3/kv/txn", post(txn))
        .route("/v3/kv/compaction", post(compaction))
        .route("/v3/auth/enable", post(gw_auth_enable))
        .route("/v3/auth/disable", post(gw_auth_disable))
        .route("/v3/auth/status", post(gw_auth_status))
        .route("/v3/auth/authenticate", post(gw_authenticate))
        .route("/v3/auth/user/add", post(gw_user_add))
        .route("/v3/auth/user/get", post(gw_user_get))
        .route("/v3/auth/user/list", post(gw_user_list))
        .route("/v3/auth/user/delete", post(gw_user_delete))
        .route("/v3/auth/user/changepw", post(gw_user_change_password))
        .route("/v3/auth/user/grant", post(gw_user_grant_role))
        .route("/v3/auth/user/revoke", post(gw_user_revoke_role))
        .route("/v3/auth/role/add", post(gw_role_add))
        .route("/v3/auth/role/get", post(gw_role_get))
        .route("/v3/auth/role/list", post(gw_role_list))
        .route("/v3/auth/role/delete", post(gw_role_delete))
        .route("/v3/auth/role/grant", post(gw_role_grant_permission))
        .route("/v3/auth/role/revoke", post(gw_role_revoke_permission))
        .route("/v3/maintenance/status", post(status))
        .route("/v3/maintenance/alarm", post(alarm))
        .route("/v3/maintenance/defragment", post(defragment))
        .route("/v3/maintenance/hash", post(hash))
        .route("/v3/maintenance/hashkv", post(hash_kv))
        .route("/v3/maintenance/transfer-leadership", post(move_leader))
        .route("/v3/lease/grant", post(lease_grant))
        // etcd serves the older /v3/kv/lease/... paths too.
        .route("/v3/lease/revoke", post(lease_revoke))
        .route("/v3/kv/lease/revoke", post(lease_revoke))
        .route("/v3/lease/timetolive", post(lease_time_to_live))
        .route("/v3/kv/lease/timetolive", post(lease_time_to_live))
        .route("/v3/lease/leases", post(lease_leases))
        .route("/v3/kv/lease/leases", post(lease_leases))
        .route("/v3/lease/keepalive", post(lease_keep_alive))
        .route("/v3/lock/lock", post(lock))
        .route("/v3/lock/unlock", post(unlock))
        .route("/v3/watch", post(watch))
        .route("/v3/election/campaign", post(campaign))
        .route("/v3/election/proclaim", post(proclaim))
        .route("/v3/election/leader", post(leader))
        .route("/v3/election/resign", post(resign))
        .with_state(gateway)
}

/// A request body, read up to what the gRPC port would take of the same request in JSON
/// (base64 makes bytes a third larger). A larger one is refused as etcd's gateway refuses it:
/// 429 with gRPC's RESOURCE_EXHAUSTED in etcd's JSON error, before more of it is read.
pub struct JsonBody(Bytes);

/// How much of a refused body is read (and dropped) before the connection is given up on.
const DRAIN_LIMIT: usize = 64 << 20;

impl JsonBody {
    fn limit(node: &Node) -> usize {
        node.limits.grpc_message_bytes().saturating_mul(4) / 3 + 64 * 1024
    }
}

impl axum::extract::FromRequest<Gateway> for JsonBody {
    type Rejection = Response;

    async fn from_request(
        request: axum::extract::Request,
        gateway: &Gateway,
    ) -> Result<Self, Response> {
        use http_body_util::BodyExt;
        let limit = Self::limit(&gateway.node);
        let declared = request
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let mut body = request.into_body();
        let mut kept = Vec::new();
        // Past the limit the rest is read and dropped (up to a bound), so that a client that
        // sends its whole body before reading hears the refusal rather than a reset.
        let mut seen = 0usize;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| {
                error(&Status::invalid_argument(format!(
                    "reading the request body: {e}"
                )))
            })?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            seen = seen.saturating_add(data.len());
            if seen <= limit {
                kept.extend_from_slice(&data);
            } else if seen > DRAIN_LIMIT {
                break;
            }
        }
        if seen > limit {
            let len = declared.unwrap_or(seen);
            return Err(error(&Status::resource_exhausted(format!(
                "grpc: received message larger than max ({len} vs. {limit})"
            ))));
        }
        Ok(JsonBody(Bytes::from(kept)))
    }
}

fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// In front of the gRPC services: a request that is not gRPC gets [`not_found`]; a gRPC
/// request's messages are held to the receive limit (`grpc_limit`): --max-request-bytes plus
/// framing room, and a plugin deploy's component on top for the Plugin service.
pub async fn grpc_only(
    State(limits): State<RequestLimits>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if !is_grpc(request.headers()) {
        return not_found(request.headers().clone(), request.uri().clone()).await;
    }
    let mut limit = limits.grpc_message_bytes();
    if request.uri().path().starts_with("/conclavepb.Plugin/") {
        limit = limit.saturating_add(crate::limits::MAX_PLUGIN_BYTES);
    }
    let request = request.map(|body| crate::grpc_limit::limit(body, limit));
    next.run(request).await
}

/// What the client port answers for a path it does not serve: gRPC's UNIMPLEMENTED to a gRPC
/// client, and to anyone else a 404 as etcd's (never a 200 that a probe would take for health).
pub async fn not_found(headers: HeaderMap, uri: axum::http::Uri) -> Response {
    if is_grpc(&headers) {
        return Status::unimplemented(format!("unknown method {}", uri.path()))
            .into_http::<axum::body::Body>()
            .into_response();
    }
    // etcd's mux answers its gateway's prefix with the gateway's words, the rest with Go's.
    if uri.path().starts_with("/v3/") {
        plain_not_found("Not Found\n")
    } else {
        page_not_found()
    }
}

/// Go's answer for a path nobody serves, as etcd's other ports give it.
pub fn page_not_found() -> Response {
    plain_not_found("404 page not found\n")
}

fn plain_not_found(text: &'static str) -> Response {
    (
        StatusCode::NOT_FOUND,
        [("content-type", "text/plain; charset=utf-8")],
        text,
    )
        .into_response()
}

/// Decodes the body, runs the gRPC handler, encodes its answer.
async fn unary<Req, Resp, Fut>(
    headers: &HeaderMap,
    body: Bytes,
    call: impl FnOnce(tonic::Request<Req>) -> Fut,
) -> Response
where
    Req: DeserializeOwned + Default,
    Resp: Serialize,
    Fut: Future<Output = Result<tonic::Response<Resp>, Status>>,
{
    let req = if body.iter().all(u8::is_ascii_whitespace) {
        Req::default()
    } else {
        match serde_json::from_slice::<Req>(&body) {
            Ok(r) => r,
            Err(e) => return error(&Status::invalid_argument(e.to_string())),
        }
    };
    match call(with_token(headers, req)).await {
        Ok(resp) => json(StatusCode::OK, &resp.into_inner()),
        Err(status) => error(&status),
    }
}

unary_handler!(gw_auth_enable, auth.auth_enable, AuthEnableRequest);
unary_handler!(gw_auth_disable, auth.auth_disable, AuthDisableRequest);
unary_handler!(gw_auth_status, auth.auth_status, AuthStatusRequest);
unary_handler!(gw_authenticate, auth.authenticate, AuthenticateRequest);
unary_handler!(gw_user_add, auth.user_add, AuthUserAddRequest);
unary_handler!(gw_user_get, auth.user_get, AuthUserGetRequest);
unary_handler!(gw_user_list, auth.user_list, AuthUserListRequest);
unary_handler!(gw_user_delete, auth.user_delete, AuthUserDeleteRequest);
unary_handler!(
    gw_user_change_password,
    auth.user_change_password,
    AuthUserChangePasswordRequest
);
unary_handler!(
    gw_user_grant_role,
    auth.user_grant_role,
    AuthUserGrantRoleRequest
);
unary_handler!(
    gw_user_revoke_role,
    auth.user_revoke_role,
    AuthUserRevokeRoleRequest
);
unary_handler!(gw_role_add, auth.role_add, AuthRoleAddRequest);
unary_handler!(gw_role_get, auth.role_get, AuthRoleGetRequest);
unary_handler!(gw_role_list, auth.role_list, AuthRoleListRequest);
unary_handler!(gw_role_delete, auth.role_delete, AuthRoleDeleteRequest);
unary_handler!(
    gw_role_grant_permission,
    auth.role_grant_permission,
    AuthRoleGrantPermissionRequest
);
unary_handler!(
    gw_role_revoke_permission,
    auth.role_revoke_permission,
    AuthRoleRevokePermissionRequest
);

/// A request as the gRPC services take it, with the token from etcd's gateway header
/// (`Authorization: <token>`) in the metadata where gRPC clients put it.
pub(crate) fn with_token<T>(headers: &HeaderMap, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(token) = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| tonic::metadata::AsciiMetadataValue::try_from(v).ok())
    {
        request.metadata_mut().insert(auth::TOKEN_METADATA, token);
    }
    request
}

fn json(code: StatusCode, body: &impl Serialize) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (code, [("content-type", "application/json")], bytes).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// grpc-gateway's error body and its mapping of gRPC codes to HTTP statuses.
fn error(status: &Status) -> Response {
    #[derive(Serialize)]
    struct Body<'a> {
        error: &'a str,
        code: i32,
        message: &'a str,
    }
    let http = match status.code() {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
            StatusCode::BAD_REQUEST
        }
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    };
    json(
        http,
        &Body {
            error: status.message(),
            code: status.code() as i32,
            message: status.message(),
        },
    )
}

unary_handler!(range, kv.range, RangeRequest);
unary_handler!(put, kv.put, PutRequest);
unary_handler!(delete_range, kv.delete_range, DeleteRangeRequest);
unary_handler!(txn, kv.txn, TxnRequest);
unary_handler!(compaction, kv.compact, CompactionRequest);
unary_handler!(status, maintenance.status, StatusRequest);
unary_handler!(alarm, maintenance.alarm, AlarmRequest);
unary_handler!(defragment, maintenance.defragment, DefragmentRequest);
unary_handler!(hash, maintenance.hash, HashRequest);
unary_handler!(hash_kv, maintenance.hash_kv, HashKvRequest);
unary_handler!(move_leader, maintenance.move_leader, MoveLeaderRequest);
unary_handler!(lease_grant, lease.lease_grant, LeaseGrantRequest);
unary_handler!(lease_revoke, lease.lease_revoke, LeaseRevokeRequest);
unary_handler!(
    lease_time_to_live,
    lease.lease_time_to_live,
    LeaseTimeToLiveRequest
);
unary_handler!(lease_leases, lease.lease_leases, LeaseLeasesRequest);
unary_handler!(lock, lock.lock, LockRequest);
unary_handler!(unlock, lock.unlock, UnlockRequest);
unary_handler!(campaign, election.campaign, CampaignRequest);
unary_handler!(proclaim, election.proclaim, ProclaimRequest);
unary_handler!(leader, election.leader, LeaderRequest);
unary_handler!(resign, election.resign, ResignRequest);

/// etcd's gateway watch: one WatchRequest in the body, then one `{"result": WatchResponse}`
/// line per response for as long as the client keeps the connection open.
async fn watch(State(g): State<Gateway>, headers: HeaderMap, JsonBody(body): JsonBody) -> Response {
    use futures::StreamExt;
    let caller = match g.node.auth.caller(&with_token(&headers, ())) {
        Ok(c) => c,
        Err(denied) => return error(&denied.into()),
    };
    let req: WatchRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(&Status::invalid_argument(e.to_string())),
    };
    // The request stream stays open: the watch lives until the HTTP client goes away.
    let requests = futures::stream::iter([Ok(req)]).chain(futures::stream::pending());
    let lines = g.watch.open(caller, Box::pin(requests)).map(|item| {
        #[derive(Serialize)]
        struct Streamed<T> {
            result: T,
        }
        let mut line = match item {
            Ok(resp) => serde_json::to_vec(&Streamed { result: resp }),
            Err(status) => serde_json::to_vec(&serde_json::json!({
                "error": {"code": status.code() as i32, "message": status.message()}
            })),
        }
        .unwrap_or_default();
        line.push(b'\n');
        Ok::<_, std::convert::Infallible>(Bytes::from(line))
    });
    (
        [("content-type", "application/json")],
        axum::body::Body::from_stream(lines),
    )
        .into_response()
}

/// A stream in etcd's gateway: one request body in, `{"result": ...}` out (one keep-alive).
async fn lease_keep_alive(
    State(g): State<Gateway>,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Response {
    #[derive(Serialize)]
    struct Streamed<T> {
        result: T,
    }
    let req: LeaseKeepAliveRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(&Status::invalid_argument(e.to_string())),
    };
    if let Err(denied) = g.node.auth.caller(&with_token(&headers, ())) {
        return error(&denied.into());
    }
    match g.lease.keep_alive_once(req).await {
        Ok(resp) => json(StatusCode::OK, &Streamed { result: resp }),
        Err(status) => error(&status),
    }
}
