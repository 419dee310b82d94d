//! gRPC `Node` service: client calls plus the two internal calls followers use to reach the
//! leader (forwarded batches and read-index requests).

use std::collections::BTreeSet;

use tonic::{Request, Response, Status};

use crate::core::NodeCore;
use crate::pb::node_server::Node;
use crate::pb::*;
use crate::types::{Command, NodeAddr};

/// Largest scan answered in one reply when the client gives no limit.
pub const DEFAULT_SCAN_LIMIT: usize = 10_000;

pub struct NodeService {
    core: NodeCore,
}

impl NodeService {
    pub fn new(core: NodeCore) -> Self {
        NodeService { core }
    }
}

#[tonic::async_trait]
impl Node for NodeService {
    async fn put(&self, req: Request<PutRequest>) -> Result<Response<PutReply>, Status> {
        let r = req.into_inner();
        let revision = self.core.put(r.key, r.value).await?;
        Ok(Response::new(PutReply { revision }))
    }

    async fn get(&self, req: Request<GetRequest>) -> Result<Response<GetReply>, Status> {
        let r = req.into_inner();
        let value = self.core.get(r.key, r.stale).await?;
        Ok(Response::new(GetReply {
            found: value.is_some(),
            value: value.unwrap_or_default(),
        }))
    }

    async fn delete(&self, req: Request<DeleteRequest>) -> Result<Response<DeleteReply>, Status> {
        let existed = self.core.delete(req.into_inner().key).await?;
        Ok(Response::new(DeleteReply { existed }))
    }

    async fn scan(&self, req: Request<ScanRequest>) -> Result<Response<ScanReply>, Status> {
        let r = req.into_inner();
        let limit = if r.limit == 0 {
            DEFAULT_SCAN_LIMIT
        } else {
            r.limit as usize
        };
        let (items, truncated) = self.core.scan(r.prefix, limit, r.stale).await?;
        Ok(Response::new(ScanReply {
            items: items
                .into_iter()
                .map(|(key, value)| KeyValue { key, value })
                .collect(),
            truncated,
        }))
    }

    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<NodeStatus>, Status> {
        Ok(Response::new(self.core.status().into()))
    }

    async fn add_learner(
        &self,
        req: Request<AddLearnerRequest>,
    ) -> Result<Response<MembershipReply>, Status> {
        let r = req.into_inner();
        let addr = NodeAddr {
            grpc: r.grpc,
            http: r.http,
        };
        let log_index = self.core.add_learner(r.id, addr, r.blocking).await?;
        Ok(Response::new(self.membership_reply(log_index)))
    }

    async fn change_membership(
        &self,
        req: Request<ChangeMembershipRequest>,
    ) -> Result<Response<MembershipReply>, Status> {
        let r = req.into_inner();
        let voters: BTreeSet<u64> = r.voters.into_iter().collect();
        let log_index = self.core.change_membership(voters, r.retain).await?;
        Ok(Response::new(self.membership_reply(log_index)))
    }

    async fn propose(
        &self,
        req: Request<ProposeRequest>,
    ) -> Result<Response<ProposeReply>, Status> {
        let commands: Vec<Command> = bincode::deserialize(&req.into_inner().commands)
            .map_err(|e| Status::invalid_argument(format!("undecodable command batch: {e}")))?;
        let results = self.core.propose_forwarded(commands).await?;
        let results = bincode::serialize(&results).map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(ProposeReply { results }))
    }

    async fn read_index(
        &self,
        _: Request<ReadIndexRequest>,
    ) -> Result<Response<ReadIndexReply>, Status> {
        let applied_index = self.core.read_index().await?;
        Ok(Response::new(ReadIndexReply { applied_index }))
    }
}

impl NodeService {
    fn membership_reply(&self, log_index: u64) -> MembershipReply {
        MembershipReply {
            members: self
                .core
                .status()
                .members
                .into_iter()
                .map(Into::into)
                .collect(),
            log_index,
        }
    }
}
