//! A typed async client for the hdi REST API, used by `hdictl`, node agents and tests.
//!
//! Every method maps one endpoint. Errors keep the server's [`Problem`] so that callers can branch on
//! its stable `code` and show its `detail`.

use std::time::Duration;

use reqwest::{Method, RequestBuilder, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::auth::{
    ApiToken, ApiTokenCreate, ApiTokenCreated, ApiTokenList, Jwks, Me, Role, RoleBinding,
    RoleBindingList, RoleBindingPut, TokenRequest, TokenResponse, User, UserCreate, UserList,
};
use crate::cluster::{
    AuditEventList, Capabilities, Cluster, ClusterList, ClusterPatch, ClusterSpec, Operation,
    OperationList, OperationState, Workspace, WorkspaceCreate, WorkspaceList,
};
use crate::job::{Job, JobCreate, JobList, JobPreview, JobProgressList};
use crate::replication_link::{
    ReplicationLink, ReplicationLinkList, ReplicationLinkSpec, ReplicationLinkStatus,
};
use crate::topic::{RecordProduce, RecordProduced, Topic, TopicCreate, TopicList, TopicPatch};
use crate::types::{
    ErrorCode, Health, Node, NodeCredential, NodeHeartbeat, NodeList, NodeRegistration, Problem,
    Readiness,
};
use crate::workload::WorkloadAssignment;

/// A page of a list: its items and the token of the next page, if any.
pub trait Page {
    /// What the list holds.
    type Item;
    /// The items and the next page's token.
    fn into_parts(self) -> (Vec<Self::Item>, Option<String>);
}

macro_rules! pages {
    ($($list:ty => $item:ty),* $(,)?) => {$(
        impl Page for $list {
            type Item = $item;
            fn into_parts(self) -> (Vec<$item>, Option<String>) {
                (self.items, self.next_page_token)
            }
        }
    )*};
}

pages! {
    NodeList => Node,
    UserList => User,
    WorkspaceList => Workspace,
    ClusterList => Cluster,
    OperationList => Operation,
    AuditEventList => crate::cluster::AuditEvent,
    TopicList => Topic,
    crate::group::ConsumerGroupList => crate::group::ConsumerGroupSummary,
    JobList => Job,
    ReplicationLinkList => ReplicationLink,
}

/// Every item of a paged list: `fetch` is called with each page's token (none for the first)
/// until a page has no next one.
///
/// # Errors
/// The first failed page's error.
pub async fn every_page<P: Page>(
    mut fetch: impl AsyncFnMut(Option<&str>) -> Result<P, ClientError>,
) -> Result<Vec<P::Item>, ClientError> {
    let mut items = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let (page, next) = fetch(token.as_deref()).await?.into_parts();
        items.extend(page);
        match next {
            Some(next) => token = Some(next),
            None => return Ok(items),
        }
    }
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The base URL is not an absolute `http://` or `https://` URL.
    #[error("invalid API URL {url:?}: it must start with http:// or https://")]
    InvalidUrl {
        /// The URL given.
        url: String,
    },
    /// The request did not get an HTTP response (connection refused, timeout, ...).
    #[error("cannot reach the control plane at {url}")]
    Transport {
        /// The URL called.
        url: String,
        /// The transport failure.
        #[source]
        source: reqwest::Error,
    },
    /// The server answered with an error status and a problem document.
    #[error("{} ({}): {}", .problem.title, .problem.code, .problem.detail.as_deref().unwrap_or("no detail"))]
    Api {
        /// The problem the server reported.
        problem: Box<Problem>,
    },
    /// Waiting gave up.
    #[error("{what} did not finish within {after:?}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long.
        after: Duration,
    },
    /// The server answered with a body this client cannot decode.
    #[error("unexpected response from {url} (HTTP {status}): {body}")]
    Decode {
        /// The URL called.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The start of the body.
        body: String,
    },
}

impl ClientError {
    /// The HTTP status of an API error, if the server answered with one.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { problem } => Some(problem.status),
            ClientError::Decode { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The stable problem code of an API error, if any.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Api { problem } => Some(problem.code),
            _ => None,
        }
    }
}

/// A client for one control plane, optionally with a bearer token.
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    base_url: String,
    token: Option<String>,
}

impl Client {
    /// The bearer token this client sends (an access token once `hdictl` has exchanged its
    /// API token): what OAUTHBEARER Kafka clients present as the same person.
    pub fn bearer_token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// A client for the control plane at `base_url` (e.g. `http://127.0.0.1:7420`).
    ///
    /// # Errors
    /// [`ClientError::InvalidUrl`] when `base_url` is not an http(s) URL.
    pub fn new(base_url: &str, token: Option<String>) -> Result<Client, ClientError> {
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(ClientError::InvalidUrl {
                url: base_url.to_owned(),
            });
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|source| ClientError::Transport {
                url: base_url.to_owned(),
                source,
            })?;
        Ok(Client {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            token,
        })
    }

    /// The base URL this client calls.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `GET /healthz`.
    pub async fn health(&self) -> Result<Health, ClientError> {
        self.call(Method::GET, "/healthz", None::<&()>).await
    }

    /// `GET /readyz`.
    pub async fn readiness(&self) -> Result<Readiness, ClientError> {
        self.call(Method::GET, "/readyz", None::<&()>).await
    }

    /// `GET /v1/nodes`: one page of nodes.
    pub async fn nodes_list(
        &self,
        page_size: Option<u32>,
        page_token: Option<&str>,
    ) -> Result<NodeList, ClientError> {
        let mut query = Vec::new();
        if let Some(size) = page_size {
            query.push(format!("page_size={size}"));
        }
        if let Some(token) = page_token {
            query.push(format!("page_token={token}"));
        }
        let path = if query.is_empty() {
            "/v1/nodes".to_owned()
        } else {
            format!("/v1/nodes?{}", query.join("&"))
        };
        self.call(Method::GET, &path, None::<&()>).await
    }

    /// All nodes, following page tokens.
    pub async fn nodes_list_all(&self) -> Result<Vec<Node>, ClientError> {
        every_page(async |token| self.nodes_list(None, token).await).await
    }

    /// `GET /v1/nodes/{id}`.
    pub async fn node_get(&self, id: Uuid) -> Result<Node, ClientError> {
        self.call(Method::GET, &format!("/v1/nodes/{id}"), None::<&()>)
            .await
    }

    /// `POST /v1/agent/nodes/{id}/credential`: exchanges the bootstrap token this client holds
    /// for the node's own credential.
    ///
    /// # Errors
    /// [`ClientError`]; `node_credential_exists` when the node has one.
    pub async fn agent_enrol(&self, id: Uuid) -> Result<NodeCredential, ClientError> {
        self.call(
            Method::POST,
            &format!("/v1/agent/nodes/{id}/credential"),
            None::<&()>,
        )
        .await
    }

    /// `DELETE /v1/nodes/{id}/credential` (platform admins): revokes a node agent's credential.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn node_credential_revoke(&self, id: Uuid) -> Result<(), ClientError> {
        let url = format!("{}/v1/nodes/{id}/credential", self.base_url);
        let response = self.send(self.request(Method::DELETE, &url), &url).await?;
        if response.status().is_success() {
            return Ok(());
        }
        Err(Self::error_from(response, &url).await)
    }

    /// `PUT /v1/agent/nodes/{id}`: register (or re-register) a node agent.
    pub async fn agent_register(
        &self,
        id: Uuid,
        registration: &NodeRegistration,
    ) -> Result<Node, ClientError> {
        self.call(
            Method::PUT,
            &format!("/v1/agent/nodes/{id}"),
            Some(registration),
        )
        .await
    }

    /// `POST /v1/agent/nodes/{id}/heartbeat`.
    pub async fn agent_heartbeat(
        &self,
        id: Uuid,
        heartbeat: &NodeHeartbeat,
    ) -> Result<(), ClientError> {
        let url = format!("{}/v1/agent/nodes/{id}/heartbeat", self.base_url);
        let response = self
            .send(self.request(Method::POST, &url).json(heartbeat), &url)
            .await?;
        if response.status().is_success() {
            return Ok(());
        }
        Err(Self::error_from(response, &url).await)
    }

    /// `GET /v1/capabilities`.
    pub async fn capabilities(&self) -> Result<Capabilities, ClientError> {
        self.call(Method::GET, "/v1/capabilities", None::<&()>)
            .await
    }

    /// `POST /v1/workspaces`.
    pub async fn workspace_create(&self, name: &str) -> Result<Workspace, ClientError> {
        let body = WorkspaceCreate {
            name: name.to_owned(),
        };
        self.call(Method::POST, "/v1/workspaces", Some(&body)).await
    }

    /// `GET /v1/workspaces` (one page).
    pub async fn workspaces_list(
        &self,
        page_token: Option<&str>,
    ) -> Result<WorkspaceList, ClientError> {
        self.call(
            Method::GET,
            &paged("/v1/workspaces", page_token),
            None::<&()>,
        )
        .await
    }

    /// `GET /v1/workspaces/{ws}/clusters` (one page).
    pub async fn clusters_list(
        &self,
        workspace: &str,
        page_token: Option<&str>,
    ) -> Result<ClusterList, ClientError> {
        let path = paged(
            &format!("/v1/workspaces/{}/clusters", segment(workspace)),
            page_token,
        );
        self.call(Method::GET, &path, None::<&()>).await
    }

    /// `GET /v1/workspaces/{ws}/clusters/{name}`.
    pub async fn cluster_get(&self, workspace: &str, name: &str) -> Result<Cluster, ClientError> {
        self.call(Method::GET, &cluster_path(workspace, name), None::<&()>)
            .await
    }

    /// `PUT /v1/workspaces/{ws}/clusters/{name}`: the operation that converges on the spec.
    pub async fn cluster_put(
        &self,
        workspace: &str,
        name: &str,
        spec: &ClusterSpec,
    ) -> Result<Operation, ClientError> {
        self.call(Method::PUT, &cluster_path(workspace, name), Some(spec))
            .await
    }

    /// `PATCH /v1/workspaces/{ws}/clusters/{name}`.
    pub async fn cluster_patch(
        &self,
        workspace: &str,
        name: &str,
        patch: &ClusterPatch,
    ) -> Result<Operation, ClientError> {
        self.call(Method::PATCH, &cluster_path(workspace, name), Some(patch))
            .await
    }

    /// `DELETE /v1/workspaces/{ws}/clusters/{name}`.
    pub async fn cluster_delete(
        &self,
        workspace: &str,
        name: &str,
    ) -> Result<Operation, ClientError> {
        self.call(Method::DELETE, &cluster_path(workspace, name), None::<&()>)
            .await
    }

    /// `GET /v1/operations/{id}`.
    pub async fn operation_get(&self, id: Uuid) -> Result<Operation, ClientError> {
        self.call(Method::GET, &format!("/v1/operations/{id}"), None::<&()>)
            .await
    }

    /// `GET /v1/workspaces/{ws}/operations` (one page).
    pub async fn operations_list(
        &self,
        workspace: &str,
        page_token: Option<&str>,
    ) -> Result<OperationList, ClientError> {
        let path = paged(
            &format!("/v1/workspaces/{}/operations", segment(workspace)),
            page_token,
        );
        self.call(Method::GET, &path, None::<&()>).await
    }

    /// `GET /v1/audit-events` (one page).
    pub async fn audit_list(
        &self,
        page_token: Option<&str>,
    ) -> Result<AuditEventList, ClientError> {
        self.call(
            Method::GET,
            &paged("/v1/audit-events", page_token),
            None::<&()>,
        )
        .await
    }

    /// Polls an operation until it ends (or `timeout` passes), calling `progress` on every change.
    ///
    /// # Errors
    /// A transport or API error, or [`ClientError::Timeout`].
    pub async fn operation_wait(
        &self,
        id: Uuid,
        timeout: Duration,
        mut progress: impl FnMut(&Operation),
    ) -> Result<Operation, ClientError> {
        let deadline = std::time::Instant::now() + timeout;
        let mut last: Option<Operation> = None;
        loop {
            let op = self.operation_get(id).await?;
            if last.as_ref() != Some(&op) {
                progress(&op);
            }
            if op.state != OperationState::Running {
                return Ok(op);
            }
            if std::time::Instant::now() >= deadline {
                return Err(ClientError::Timeout {
                    what: format!("operation {id}"),
                    after: timeout,
                });
            }
            last = Some(op);
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// `GET /v1/agent/nodes/{id}/workloads`: the workloads the node must run.
    pub async fn agent_workloads(&self, id: Uuid) -> Result<WorkloadAssignment, ClientError> {
        self.call(
            Method::GET,
            &format!("/v1/agent/nodes/{id}/workloads"),
            None::<&()>,
        )
        .await
    }

    /// `GET /v1/workspaces/{ws}/clusters/{cluster}/topics` (one page).
    pub async fn topics_list(
        &self,
        workspace: &str,
        cluster: &str,
        page_token: Option<&str>,
    ) -> Result<TopicList, ClientError> {
        let path = paged(
            &format!("{}/topics", cluster_path(workspace, cluster)),
            page_token,
        );
        self.call(Method::GET, &path, None::<&()>).await
    }

    /// All topics of a cluster, following page tokens.
    pub async fn topics_list_all(
        &self,
        workspace: &str,
        cluster: &str,
    ) -> Result<Vec<Topic>, ClientError> {
        every_page(async |token| self.topics_list(workspace, cluster, token).await).await
    }

    /// `POST /v1/workspaces/{ws}/clusters/{cluster}/topics`: the created topic.
    pub async fn topic_create(
        &self,
        workspace: &str,
        cluster: &str,
        topic: &TopicCreate,
    ) -> Result<Topic, ClientError> {
        let path = format!("{}/topics", cluster_path(workspace, cluster));
        self.call(Method::POST, &path, Some(topic)).await
    }

    /// `POST /v1/workspaces/{ws}/clusters/{cluster}/topics/{topic}/records`.
    pub async fn record_produce(
        &self,
        workspace: &str,
        cluster: &str,
        topic: &str,
        record: &RecordProduce,
    ) -> Result<RecordProduced, ClientError> {
        let path = format!("{}/records", topic_path(workspace, cluster, topic));
        self.call(Method::POST, &path, Some(record)).await
    }

    /// `GET /v1/workspaces/{ws}/clusters/{cluster}/topics/{topic}`.
    pub async fn topic_get(
        &self,
        workspace: &str,
        cluster: &str,
        topic: &str,
    ) -> Result<Topic, ClientError> {
        self.call(
            Method::GET,
            &topic_path(workspace, cluster, topic),
            None::<&()>,
        )
        .await
    }

    /// `PATCH /v1/workspaces/{ws}/clusters/{cluster}/topics/{topic}`: the topic after the change.
    pub async fn topic_patch(
        &self,
        workspace: &str,
        cluster: &str,
        topic: &str,
        patch: &TopicPatch,
    ) -> Result<Topic, ClientError> {
        self.call(
            Method::PATCH,
            &topic_path(workspace, cluster, topic),
            Some(patch),
        )
        .await
    }

    /// `DELETE /v1/workspaces/{ws}/clusters/{cluster}/topics/{topic}` (204, no body).
    pub async fn topic_delete(
        &self,
        workspace: &str,
        cluster: &str,
        topic: &str,
    ) -> Result<(), ClientError> {
        let url = format!("{}{}", self.base_url, topic_path(workspace, cluster, topic));
        let response = self.send(self.request(Method::DELETE, &url), &url).await?;
        if response.status().is_success() {
            return Ok(());
        }
        Err(Self::error_from(response, &url).await)
    }

    /// `GET /v1/workspaces/{ws}/clusters/{cluster}/consumer-groups` (one page).
    pub async fn consumer_groups_list(
        &self,
        workspace: &str,
        cluster: &str,
        page_token: Option<&str>,
    ) -> Result<crate::ConsumerGroupList, ClientError> {
        let path = paged(
            &format!("{}/consumer-groups", cluster_path(workspace, cluster)),
            page_token,
        );
        self.call(Method::GET, &path, None::<&()>).await
    }

    /// All consumer groups of a cluster, following page tokens.
    pub async fn consumer_groups_list_all(
        &self,
        workspace: &str,
        cluster: &str,
    ) -> Result<Vec<crate::ConsumerGroupSummary>, ClientError> {
        every_page(async |token| self.consumer_groups_list(workspace, cluster, token).await).await
    }

    /// `GET /v1/workspaces/{ws}/clusters/{cluster}/consumer-groups/{group}`.
    pub async fn consumer_group_get(
        &self,
        workspace: &str,
        cluster: &str,
        group: &str,
    ) -> Result<crate::ConsumerGroup, ClientError> {
        self.call(
            Method::GET,
            &group_path(workspace, cluster, group),
            None::<&()>,
        )
        .await
    }

    /// `POST /v1/workspaces/{ws}/clusters/{cluster}/consumer-groups/{group}/reset-offsets`: the
    /// new offsets.
    pub async fn consumer_group_reset_offsets(
        &self,
        workspace: &str,
        cluster: &str,
        group: &str,
        reset: &crate::ConsumerGroupResetOffsets,
    ) -> Result<crate::ConsumerGroupOffsetsReset, ClientError> {
        let path = format!("{}/reset-offsets", group_path(workspace, cluster, group));
        self.call(Method::POST, &path, Some(reset)).await
    }

    /// `DELETE /v1/workspaces/{ws}/clusters/{cluster}/consumer-groups/{group}` (204, no body).
    pub async fn consumer_group_delete(
        &self,
        workspace: &str,
        cluster: &str,
        group: &str,
    ) -> Result<(), ClientError> {
        let url = format!("{}{}", self.base_url, group_path(workspace, cluster, group));
        let response = self.send(self.request(Method::DELETE, &url), &url).await?;
        if response.status().is_success() {
            return Ok(());
        }
        Err(Self::error_from(response, &url).await)
    }

    /// `GET /v1/workspaces/{ws}/clusters/{cluster}/metrics`: the cluster's recent time series.
    pub async fn cluster_metrics(
        &self,
        workspace: &str,
        cluster: &str,
    ) -> Result<crate::ClusterMetrics, ClientError> {
        let path = format!("{}/metrics", cluster_path(workspace, cluster));
        self.call(Method::GET, &path, None::<&()>).await
    }

    /// `POST /v1/workspaces/{ws}/clusters/{cluster}/kafka-users`: the user and its password.
    pub async fn kafka_user_create(
        &self,
        workspace: &str,
        cluster: &str,
        user: &crate::KafkaUserCreate,
    ) -> Result<crate::KafkaUserCredential, ClientError> {
        let path = format!("{}/kafka-users", cluster_path(workspace, cluster));
        self.call(Method::POST, &path, Some(user)).await
    }

    /// `GET /v1/workspaces/{ws}/clusters/{cluster}/kafka-users`.
    pub async fn kafka_users_list(
        &self,
        workspace: &str,
        cluster: &str,
    ) -> Result<crate::KafkaUserList, ClientError> {
        let path = format!("{}/kafka-users", cluster_path(workspace, cluster));
        self.call(Method::GET, &path, None::<&()>).await
    }

    /// `GET /v1/workspaces/{ws}/clusters/{cluster}/kafka-users/{name}`.
    pub async fn kafka_user_get(
        &self,
        workspace: &str,
        cluster: &str,
        name: &str,
    ) -> Result<crate::KafkaUser, ClientError> {
        let path = kafka_user_path(workspace, cluster, name);
        self.call(Method::GET, &path, None::<&()>).await
    }

    /// `PATCH /v1/workspaces/{ws}/clusters/{cluster}/kafka-users/{name}`: replaces its ACLs.
    pub async fn kafka_user_patch(
        &self,
        workspace: &str,
        cluster: &str,
        name: &str,
        patch: &crate::KafkaUserPatch,
    ) -> Result<crate::KafkaUser, ClientError> {
        let path = kafka_user_path(workspace, cluster, name);
        self.call(Method::PATCH, &path, Some(patch)).await
    }

    /// `POST /v1/workspaces/{ws}/clusters/{cluster}/kafka-users/{name}/rotate`.
    pub async fn kafka_user_rotate(
        &self,
        workspace: &str,
        cluster: &str,
        name: &str,
    ) -> Result<crate::KafkaUserCredential, ClientError> {
        let path = format!("{}/rotate", kafka_user_path(workspace, cluster, name));
        self.call(Method::POST, &path, None::<&()>).await
    }

    /// `DELETE /v1/workspaces/{ws}/clusters/{cluster}/kafka-users/{name}` (204).
    pub async fn kafka_user_delete(
        &self,
        workspace: &str,
        cluster: &str,
        name: &str,
    ) -> Result<(), ClientError> {
        let url = format!(
            "{}{}",
            self.base_url,
            kafka_user_path(workspace, cluster, name)
        );
        let response = self.send(self.request(Method::DELETE, &url), &url).await?;
        if response.status().is_success() {
            return Ok(());
        }
        Err(Self::error_from(response, &url).await)
    }

    /// `PUT /v1/workspaces/{ws}/replication-links/{name}`: the link created or updated.
    pub async fn link_put(
        &self,
        workspace: &str,
        name: &str,
        spec: &ReplicationLinkSpec,
    ) -> Result<ReplicationLink, ClientError> {
        self.call(Method::PUT, &link_path(workspace, name), Some(spec))
            .await
    }

    /// `GET /v1/workspaces/{ws}/replication-links` (one page).
    pub async fn links_list(
        &self,
        workspace: &str,
        page_token: Option<&str>,
    ) -> Result<ReplicationLinkList, ClientError> {
        let path = paged(
            &format!("/v1/workspaces/{}/replication-links", segment(workspace)),
            page_token,
        );
        self.call(Method::GET, &path, None::<&()>).await
    }

    /// `GET /v1/workspaces/{ws}/replication-links/{name}`: the link with its live status.
    pub async fn link_get(
        &self,
        workspace: &str,
        name: &str,
    ) -> Result<ReplicationLink, ClientError> {
        self.call(Method::GET, &link_path(workspace, name), None::<&()>)
            .await
    }

    /// `GET /v1/workspaces/{ws}/replication-links/{name}/lag`.
    pub async fn link_lag(
        &self,
        workspace: &str,
        name: &str,
    ) -> Result<ReplicationLinkStatus, ClientError> {
        let path = format!("{}/lag", link_path(workspace, name));
        self.call(Method::GET, &path, None::<&()>).await
    }

    /// `POST /v1/workspaces/{ws}/replication-links/{name}/promote`.
    pub async fn link_promote(
        &self,
        workspace: &str,
        name: &str,
    ) -> Result<Operation, ClientError> {
        self.link_action(workspace, name, "promote").await
    }

    /// `POST /v1/workspaces/{ws}/replication-links/{name}/failover`.
    pub async fn link_failover(
        &self,
        workspace: &str,
        name: &str,
    ) -> Result<Operation, ClientError> {
        self.link_action(workspace, name, "failover").await
    }

    /// `POST /v1/workspaces/{ws}/replication-links/{name}/reverse`.
    pub async fn link_reverse(
        &self,
        workspace: &str,
        name: &str,
    ) -> Result<Operation, ClientError> {
        self.link_action(workspace, name, "reverse").await
    }

    /// `POST /v1/workspaces/{ws}/replication-links/{name}/pause`.
    pub async fn link_pause(&self, workspace: &str, name: &str) -> Result<Operation, ClientError> {
        self.link_action(workspace, name, "pause").await
    }

    /// `POST /v1/workspaces/{ws}/replication-links/{name}/resume`.
    pub async fn link_resume(&self, workspace: &str, name: &str) -> Result<Operation, ClientError> {
        self.link_action(workspace, name, "resume").await
    }

    async fn link_action(
        &self,
        workspace: &str,
        name: &str,
        action: &str,
    ) -> Result<Operation, ClientError> {
        let path = format!("{}/{action}", link_path(workspace, name));
        self.call(Method::POST, &path, None::<&()>).await
    }

    /// `DELETE /v1/workspaces/{ws}/replication-links/{name}` (204).
    pub async fn link_delete(&self, workspace: &str, name: &str) -> Result<(), ClientError> {
        let url = format!("{}{}", self.base_url, link_path(workspace, name));
        let response = self.send(self.request(Method::DELETE, &url), &url).await?;
        if response.status().is_success() {
            return Ok(());
        }
        Err(Self::error_from(response, &url).await)
    }

    /// `GET /v1/workspaces/{ws}/clusters/{cluster}/jobs` (one page).
    pub async fn jobs_list(
        &self,
        workspace: &str,
        cluster: &str,
        page_token: Option<&str>,
    ) -> Result<JobList, ClientError> {
        let path = paged(
            &format!("{}/jobs", cluster_path(workspace, cluster)),
            page_token,
        );
        self.call(Method::GET, &path, None::<&()>).await
    }

    /// All jobs of a Spark cluster, following page tokens.
    pub async fn jobs_list_all(
        &self,
        workspace: &str,
        cluster: &str,
    ) -> Result<Vec<Job>, ClientError> {
        every_page(async |token| self.jobs_list(workspace, cluster, token).await).await
    }

    /// `POST /v1/workspaces/{ws}/clusters/{cluster}/jobs`: the submitted job.
    pub async fn job_create(
        &self,
        workspace: &str,
        cluster: &str,
        job: &JobCreate,
    ) -> Result<Job, ClientError> {
        let path = format!("{}/jobs", cluster_path(workspace, cluster));
        self.call(Method::POST, &path, Some(job)).await
    }

    /// `GET /v1/workspaces/{ws}/clusters/{cluster}/jobs/{job}` (`job`: id or name).
    pub async fn job_get(
        &self,
        workspace: &str,
        cluster: &str,
        job: &str,
    ) -> Result<Job, ClientError> {
        self.call(Method::GET, &job_path(workspace, cluster, job), None::<&()>)
            .await
    }

    /// `GET .../jobs/{job}/progress?limit=N`: the latest progress documents, oldest first.
    pub async fn job_progress(
        &self,
        workspace: &str,
        cluster: &str,
        job: &str,
        limit: Option<u32>,
    ) -> Result<JobProgressList, ClientError> {
        let path = limited(
            &format!("{}/progress", job_path(workspace, cluster, job)),
            limit,
        );
        self.call(Method::GET, &path, None::<&()>).await
    }

    /// `GET .../jobs/{job}/preview?limit=N`: the latest rows the job wrote.
    pub async fn job_preview(
        &self,
        workspace: &str,
        cluster: &str,
        job: &str,
        limit: Option<u32>,
    ) -> Result<JobPreview, ClientError> {
        let path = limited(
            &format!("{}/preview", job_path(workspace, cluster, job)),
            limit,
        );
        self.call(Method::GET, &path, None::<&()>).await
    }

    /// `DELETE /v1/workspaces/{ws}/clusters/{cluster}/jobs/{job}`: stops and deletes the job.
    pub async fn job_delete(
        &self,
        workspace: &str,
        cluster: &str,
        job: &str,
    ) -> Result<(), ClientError> {
        let url = format!("{}{}", self.base_url, job_path(workspace, cluster, job));
        self.call_empty(Method::DELETE, &url, None::<&()>).await
    }

    /// The same client with another bearer token.
    pub fn with_token(&self, token: Option<String>) -> Client {
        Client {
            http: self.http.clone(),
            base_url: self.base_url.clone(),
            token,
        }
    }

    /// `POST /v1/auth/token`: exchanges a password or an API token for an access token.
    pub async fn token_exchange(
        &self,
        request: &TokenRequest,
    ) -> Result<TokenResponse, ClientError> {
        self.call(Method::POST, "/v1/auth/token", Some(request))
            .await
    }

    /// `GET /v1/me`: who the caller is and its role per workspace.
    pub async fn me(&self) -> Result<Me, ClientError> {
        self.call(Method::GET, "/v1/me", None::<&()>).await
    }

    /// `GET /.well-known/jwks.json`.
    pub async fn jwks(&self) -> Result<Jwks, ClientError> {
        self.call(Method::GET, "/.well-known/jwks.json", None::<&()>)
            .await
    }

    /// `POST /v1/users`.
    pub async fn user_create(&self, username: &str, password: &str) -> Result<User, ClientError> {
        let body = UserCreate {
            username: username.to_owned(),
            password: password.to_owned(),
        };
        self.call(Method::POST, "/v1/users", Some(&body)).await
    }

    /// `GET /v1/users` (one page).
    pub async fn users_list(&self, page_token: Option<&str>) -> Result<UserList, ClientError> {
        self.call(Method::GET, &paged("/v1/users", page_token), None::<&()>)
            .await
    }

    /// `DELETE /v1/users/{username}`.
    pub async fn user_delete(&self, username: &str) -> Result<(), ClientError> {
        let url = format!("{}/v1/users/{}", self.base_url, segment(username));
        self.call_empty(Method::DELETE, &url, None::<&()>).await
    }

    /// `POST /v1/workspaces/{ws}/clusters/{cluster}/rotate-authorities`.
    pub async fn cluster_authorities_rotate(
        &self,
        workspace: &str,
        cluster: &str,
        request: &crate::AuthorityRotationRequest,
    ) -> Result<crate::AuthorityRotation, ClientError> {
        self.call(
            Method::POST,
            &format!(
                "/v1/workspaces/{}/clusters/{}/rotate-authorities",
                segment(workspace),
                segment(cluster)
            ),
            Some(request),
        )
        .await
    }

    /// `POST /v1/workspaces/{ws}/clusters/{cluster}/rotate-certificates`.
    pub async fn cluster_certificates_rotate(
        &self,
        workspace: &str,
        cluster: &str,
    ) -> Result<crate::CertificateRotation, ClientError> {
        self.call::<(), _>(
            Method::POST,
            &format!(
                "/v1/workspaces/{}/clusters/{}/rotate-certificates",
                segment(workspace),
                segment(cluster)
            ),
            None,
        )
        .await
    }

    /// `POST /v1/users/{username}/api-tokens`: the secret is in the answer only.
    pub async fn api_token_create(
        &self,
        username: &str,
        request: &ApiTokenCreate,
    ) -> Result<ApiTokenCreated, ClientError> {
        self.call(
            Method::POST,
            &format!("/v1/users/{}/api-tokens", segment(username)),
            Some(request),
        )
        .await
    }

    /// `GET /v1/users/{username}/api-tokens`.
    pub async fn api_tokens_list(&self, username: &str) -> Result<Vec<ApiToken>, ClientError> {
        let list: ApiTokenList = self
            .call(
                Method::GET,
                &format!("/v1/users/{}/api-tokens", segment(username)),
                None::<&()>,
            )
            .await?;
        Ok(list.items)
    }

    /// `DELETE /v1/users/{username}/api-tokens/{name}`.
    pub async fn api_token_revoke(&self, username: &str, name: &str) -> Result<(), ClientError> {
        let url = format!(
            "{}/v1/users/{}/api-tokens/{}",
            self.base_url,
            segment(username),
            segment(name)
        );
        self.call_empty(Method::DELETE, &url, None::<&()>).await
    }

    /// `GET /v1/workspaces/{ws}/role-bindings`.
    pub async fn role_bindings_list(
        &self,
        workspace: &str,
    ) -> Result<RoleBindingList, ClientError> {
        self.call(
            Method::GET,
            &format!("/v1/workspaces/{}/role-bindings", segment(workspace)),
            None::<&()>,
        )
        .await
    }

    /// `PUT /v1/workspaces/{ws}/role-bindings/{username}`.
    pub async fn role_binding_put(
        &self,
        workspace: &str,
        username: &str,
        role: Role,
    ) -> Result<RoleBinding, ClientError> {
        self.call(
            Method::PUT,
            &format!(
                "/v1/workspaces/{}/role-bindings/{}",
                segment(workspace),
                segment(username)
            ),
            Some(&RoleBindingPut { role }),
        )
        .await
    }

    /// `DELETE /v1/workspaces/{ws}/role-bindings/{username}`.
    pub async fn role_binding_delete(
        &self,
        workspace: &str,
        username: &str,
    ) -> Result<(), ClientError> {
        let url = format!(
            "{}/v1/workspaces/{}/role-bindings/{}",
            self.base_url,
            segment(workspace),
            segment(username)
        );
        self.call_empty(Method::DELETE, &url, None::<&()>).await
    }

    async fn call_empty<B: Serialize>(
        &self,
        method: Method,
        url: &str,
        body: Option<&B>,
    ) -> Result<(), ClientError> {
        let mut builder = self.request(method, url);
        if let Some(body) = body {
            builder = builder.json(body);
        }
        let response = self.send(builder, url).await?;
        if response.status().is_success() {
            return Ok(());
        }
        Err(Self::error_from(response, url).await)
    }

    fn request(&self, method: Method, url: &str) -> RequestBuilder {
        let builder = self.http.request(method, url);
        match &self.token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    async fn send(
        &self,
        builder: RequestBuilder,
        url: &str,
    ) -> Result<reqwest::Response, ClientError> {
        builder
            .send()
            .await
            .map_err(|source| ClientError::Transport {
                url: url.to_owned(),
                source,
            })
    }

    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        let url = format!("{}{path}", self.base_url);
        let mut builder = self.request(method, &url);
        if let Some(body) = body {
            builder = builder.json(body);
        }
        let response = self.send(builder, &url).await?;
        if !response.status().is_success() {
            return Err(Self::error_from(response, &url).await);
        }
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|source| ClientError::Transport {
                url: url.clone(),
                source,
            })?;
        serde_json::from_slice(&bytes).map_err(|_| ClientError::Decode {
            url,
            status: status.as_u16(),
            body: String::from_utf8_lossy(&bytes[..bytes.len().min(512)]).into_owned(),
        })
    }

    async fn error_from(response: reqwest::Response, url: &str) -> ClientError {
        let status: StatusCode = response.status();
        let bytes = match response.bytes().await {
            Ok(bytes) => bytes,
            Err(source) => {
                return ClientError::Transport {
                    url: url.to_owned(),
                    source,
                };
            }
        };
        match serde_json::from_slice::<Problem>(&bytes) {
            Ok(problem) => ClientError::Api {
                problem: Box::new(problem),
            },
            Err(_) => ClientError::Decode {
                url: url.to_owned(),
                status: status.as_u16(),
                body: String::from_utf8_lossy(&bytes[..bytes.len().min(512)]).into_owned(),
            },
        }
    }
}

/// A path segment, percent-encoded where it must be (names are DNS labels, so rarely).
fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn cluster_path(workspace: &str, name: &str) -> String {
    format!(
        "/v1/workspaces/{}/clusters/{}",
        segment(workspace),
        segment(name)
    )
}

fn topic_path(workspace: &str, cluster: &str, topic: &str) -> String {
    format!(
        "{}/topics/{}",
        cluster_path(workspace, cluster),
        segment(topic)
    )
}

fn group_path(workspace: &str, cluster: &str, group: &str) -> String {
    format!(
        "{}/consumer-groups/{}",
        cluster_path(workspace, cluster),
        segment(group)
    )
}

fn kafka_user_path(workspace: &str, cluster: &str, name: &str) -> String {
    format!(
        "{}/kafka-users/{}",
        cluster_path(workspace, cluster),
        segment(name)
    )
}

fn link_path(workspace: &str, name: &str) -> String {
    format!(
        "/v1/workspaces/{}/replication-links/{}",
        segment(workspace),
        segment(name)
    )
}

fn job_path(workspace: &str, cluster: &str, job: &str) -> String {
    format!("{}/jobs/{}", cluster_path(workspace, cluster), segment(job))
}

fn limited(path: &str, limit: Option<u32>) -> String {
    match limit {
        Some(limit) => format!("{path}?limit={limit}"),
        None => path.to_owned(),
    }
}

fn paged(path: &str, page_token: Option<&str>) -> String {
    match page_token {
        Some(token) => format!("{path}?page_token={}", segment(token)),
        None => path.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_urls_without_a_scheme() {
        let err = Client::new("127.0.0.1:7420", None).unwrap_err();
        assert!(err.to_string().contains("must start with http://"), "{err}");
        assert!(
            Client::new("http://127.0.0.1:7420/", None)
                .unwrap()
                .base_url()
                .ends_with("7420")
        );
    }

    #[tokio::test]
    async fn unreachable_server_is_a_transport_error() {
        // Port 9 (discard) on loopback has no listener here; the connection is refused at once.
        let client = Client::new("http://127.0.0.1:9", None).unwrap();
        let err = client.health().await.unwrap_err();
        assert!(matches!(err, ClientError::Transport { .. }), "{err:?}");
        assert_eq!(err.status(), None);
    }
}
