//! Who may change a resource: its owner or an administrator (`app_metadata.role`).

use uuid::Uuid;

/// The facts about a caller that authorization may use: only server-controlled claims.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Actor {
    pub id: Uuid,
    pub is_admin: bool,
}

impl From<&crate::auth::AuthUser> for Actor {
    fn from(user: &crate::auth::AuthUser) -> Self {
        Self {
            id: user.id,
            is_admin: user.is_admin,
        }
    }
}

/// The caller may write a resource owned by `owner` (items) or that *is* `owner` (profiles).
pub fn may_modify(actor: Actor, owner: Uuid) -> bool {
    actor.is_admin || actor.id == owner
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Uuid = Uuid::from_u128(1);
    const B: Uuid = Uuid::from_u128(2);

    #[test]
    fn owner_may_modify_own_resource() {
        assert!(may_modify(
            Actor {
                id: A,
                is_admin: false
            },
            A
        ));
    }

    #[test]
    fn other_user_may_not_modify() {
        assert!(!may_modify(
            Actor {
                id: B,
                is_admin: false
            },
            A
        ));
    }

    #[test]
    fn admin_may_modify_anything() {
        assert!(may_modify(
            Actor {
                id: B,
                is_admin: true
            },
            A
        ));
        assert!(may_modify(
            Actor {
                id: A,
                is_admin: true
            },
            A
        ));
    }
}
