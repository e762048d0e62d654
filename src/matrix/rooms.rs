//! Room provisioning and the membership guard: the encrypted ressursteam,
//! direct and case rooms, who is invited, and what happens when someone
//! unexpected joins.

use super::session::user;
use super::{Bot, MatrixError, direct_room, escape_html, school_room};
use crate::store::MatrixRoom;
use matrix_sdk::Room;
use matrix_sdk::ruma::api::client::room::create_room::v3::{Request as CreateRoom, RoomPreset};
use matrix_sdk::ruma::events::InitialStateEvent;
use matrix_sdk::ruma::events::room::encryption::RoomEncryptionEventContent;
use matrix_sdk::ruma::events::room::history_visibility::{HistoryVisibility, RoomHistoryVisibilityEventContent};
use matrix_sdk::ruma::events::room::member::MembershipState;

/// The namespaced state event holding the room's non-personal configuration.
pub const CONFIG_EVENT_TYPE: &str = "no.tilstede.config";

impl Bot {
    /// Makes sure every configured school has its encrypted ressursteam room
    /// with the configured members invited, and every admin a direct room.
    pub async fn ensure_rooms(&self) -> Result<(), MatrixError> {
        for school in self.inner.config.schools.clone() {
            self.ensure_school_room(&school.school, &school.name, &school.members)
                .await?;
        }
        for admin in self.inner.config.admins.clone() {
            self.ensure_direct(&admin).await?;
        }
        Ok(())
    }

    fn expected(&self, members: &[String]) -> Vec<String> {
        let mut all = vec![self.inner.config.user.clone()];
        all.extend(members.iter().filter(|m| **m != self.inner.config.user).cloned());
        all
    }

    /// Creates (if missing) a school's ressursteam room and invites members
    /// not yet in it. Returns the room id.
    pub async fn ensure_school_room(
        &self,
        school: &str,
        name: &str,
        members: &[String],
    ) -> Result<String, MatrixError> {
        let key = school_room(school);
        let expected = self.expected(members);
        if let Some(mut known) = self.inner.store.matrix_room(&key).await?
            && let Some(room) = self.inner.client.get_room(
                &matrix_sdk::ruma::OwnedRoomId::try_from(known.room_id.as_str())
                    .map_err(|_| MatrixError::BadId(known.room_id.clone()))?,
            )
        {
            for m in members {
                let present = room.get_member_no_sync(&user(m)?).await?;
                let in_room =
                    present.is_some_and(|p| matches!(p.membership(), MembershipState::Join | MembershipState::Invite));
                if !in_room {
                    room.invite_user_by_id(&user(m)?).await?;
                }
            }
            known.members = expected;
            self.inner.store.put_matrix_room(&known).await?;
            return Ok(known.room_id);
        }
        let config = serde_json::json!({ "kind": "ressursteam", "school": school, "version": 1 });
        let room_id = self
            .create_encrypted_room(Some(name), members, false, Some(config))
            .await?;
        self.inner
            .store
            .put_matrix_room(&MatrixRoom {
                room_key: key,
                room_id: room_id.clone(),
                kind: "ressursteam".into(),
                members: expected,
                blocked: None,
            })
            .await?;
        tracing::info!(school, room = %room_id, "ressursteam room created");
        Ok(room_id)
    }

    /// The encrypted direct room with `user_id`, created on first use.
    pub async fn ensure_direct(&self, user_id: &str) -> Result<String, MatrixError> {
        let key = direct_room(user_id);
        if let Some(known) = self.inner.store.matrix_room(&key).await? {
            return Ok(known.room_id);
        }
        let room_id = self
            .create_encrypted_room(
                None,
                &[user_id.to_string()],
                true,
                Some(serde_json::json!({ "kind": "direct", "version": 1 })),
            )
            .await?;
        self.inner
            .store
            .put_matrix_room(&MatrixRoom {
                room_key: key,
                room_id: room_id.clone(),
                kind: "direct".into(),
                members: self.expected(&[user_id.to_string()]),
                blocked: None,
            })
            .await?;
        Ok(room_id)
    }

    /// Creates a room the workflow planned (a case room), encrypted, with
    /// exactly the planned members invited. `false` when nothing is planned.
    pub async fn ensure_planned(&self, room_key: &str) -> Result<bool, MatrixError> {
        if self.inner.store.matrix_room(room_key).await?.is_some() {
            return Ok(true);
        }
        let Some(plan) = self.inner.store.matrix_room_plan(room_key).await? else {
            return Ok(false);
        };
        let room_id = self
            .create_encrypted_room(
                plan.name.as_deref(),
                &plan.members,
                false,
                Some(serde_json::json!({ "kind": plan.kind, "version": 1 })),
            )
            .await?;
        self.inner
            .store
            .put_matrix_room(&MatrixRoom {
                room_key: room_key.to_string(),
                room_id: room_id.clone(),
                kind: plan.kind.clone(),
                members: self.expected(&plan.members),
                blocked: None,
            })
            .await?;
        tracing::info!(room = %room_id, kind = %plan.kind, "planned room created");
        Ok(true)
    }

    async fn create_encrypted_room(
        &self,
        name: Option<&str>,
        invite: &[String],
        direct: bool,
        config: Option<serde_json::Value>,
    ) -> Result<String, MatrixError> {
        let mut request = CreateRoom::new();
        request.name = name.map(str::to_string);
        request.is_direct = direct;
        request.preset = Some(if direct {
            RoomPreset::TrustedPrivateChat
        } else {
            RoomPreset::PrivateChat
        });
        request.invite = invite.iter().map(|u| user(u)).collect::<Result<_, _>>()?;
        request.initial_state = vec![
            InitialStateEvent::with_empty_state_key(RoomEncryptionEventContent::with_recommended_defaults())
                .to_raw_any(),
            // Members read from their invitation on, never older history.
            InitialStateEvent::with_empty_state_key(RoomHistoryVisibilityEventContent::new(HistoryVisibility::Invited))
                .to_raw_any(),
        ];
        let room = self.inner.client.create_room(request).await?;
        if let Some(config) = config {
            room.send_state_event_raw(CONFIG_EVENT_TYPE, "", config).await?;
        }
        Ok(room.room_id().to_string())
    }

    /// Stops posting into a managed room when `member` was not expected there,
    /// and alerts the admins. Returns whether the room is (now) blocked.
    pub(super) async fn check_member(&self, room: &Room, member: &str) -> Result<bool, MatrixError> {
        let Some(known) = self.inner.store.matrix_room_by_id(room.room_id().as_str()).await? else {
            return Ok(false);
        };
        if known.blocked.is_some() {
            return Ok(true);
        }
        if known.members.iter().any(|m| m == member) {
            return Ok(false);
        }
        self.inner
            .store
            .set_matrix_room_blocked(&known.room_key, Some("unexpected-member"))
            .await?;
        tracing::warn!(room = %known.room_key, "unexpected member joined; posting stopped");
        let plain = format!(
            "Varsel: {member} er med i rommet {} uten å stå på medlemslisten. Boten har sluttet å poste der til en administrator har ryddet i rommet.",
            known.room_key
        );
        for admin in &self.inner.config.admins {
            let key = direct_room(admin);
            if key == known.room_key {
                continue;
            }
            self.enqueue(&super::notice(
                &key,
                &plain,
                &escape_html(&plain),
                std::slice::from_ref(admin),
            ))
            .await?;
        }
        Ok(true)
    }
}
