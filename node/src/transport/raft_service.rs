//! The server side of the Raft network: decodes each payload, hands it to the local Raft,
//! and encodes openraft's full `Result` so the caller sees remote errors as such.

use serde::Serialize;
use tonic::{Request, Response, Status};

use super::election_holds::ElectionHolds;
use crate::pb::raft_server::Raft as RaftRpc;
use crate::pb::{ElectionHintReply, ElectionHintRequest, RaftPayload};
use crate::types::Raft;

pub struct RaftService {
    raft: Raft,
    holds: ElectionHolds,
}

impl RaftService {
    pub fn new(raft: Raft) -> Self {
        RaftService {
            holds: ElectionHolds::new(raft.clone()),
            raft,
        }
    }
}

fn decode<T: serde::de::DeserializeOwned>(req: Request<RaftPayload>) -> Result<T, Status> {
    bincode::deserialize(&req.into_inner().data)
        .map_err(|e| Status::invalid_argument(format!("undecodable raft message: {e}")))
}

fn encode<T: Serialize>(result: &T) -> Result<Response<RaftPayload>, Status> {
    let data = bincode::serialize(result)
        .map_err(|e| Status::internal(format!("cannot encode raft reply: {e}")))?;
    Ok(Response::new(RaftPayload { data }))
}

#[tonic::async_trait]
impl RaftRpc for RaftService {
    async fn append_entries(
        &self,
        req: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        encode(&self.raft.append_entries(decode(req)?).await)
    }

    async fn vote(&self, req: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        encode(&self.raft.vote(decode(req)?).await)
    }

    async fn install_snapshot(
        &self,
        req: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        encode(&self.raft.install_snapshot(decode(req)?).await)
    }

    async fn election_hint(
        &self,
        req: Request<ElectionHintRequest>,
    ) -> Result<Response<ElectionHintReply>, Status> {
        self.holds.apply(req.get_ref()).await?;
        Ok(Response::new(ElectionHintReply {}))
    }
}
