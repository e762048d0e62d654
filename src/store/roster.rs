//! Storing and reading the roster.

use super::{Store, StoreError, now};
use crate::domain::roster::{PupilContext, Roster, RosterClass, RosterPerson, RosterPupil, RosterSchool};
use sqlx::Row;
use sqlx::any::AnyRow;

impl Store {
    /// Inserts or replaces every school, class, pupil and staff member in
    /// `roster` (by id), in one transaction. Entries not in `roster` stay.
    pub async fn upsert_roster(&self, roster: &Roster) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        write_roster(&mut tx, roster).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A pupil with school, class and contact teachers, if on the roster.
    pub async fn pupil_context(&self, pupil: &str) -> Result<Option<PupilContext>, StoreError> {
        let Some(row) =
            sqlx::query("SELECT id, school, class, grade, given_name, family_name FROM pupils WHERE id = $1")
                .bind(pupil)
                .fetch_optional(&self.pool)
                .await?
        else {
            return Ok(None);
        };
        let pupil = pupil_from_row(&row)?;
        let school = sqlx::query("SELECT id, name FROM schools WHERE id = $1")
            .bind(pupil.school.as_str())
            .fetch_optional(&self.pool)
            .await?
            .map(|r| -> Result<RosterSchool, StoreError> {
                Ok(RosterSchool {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                })
            })
            .transpose()?;
        let class = match &pupil.class {
            None => None,
            Some(id) => self.class(id).await?,
        };
        let mut contact_teachers = Vec::new();
        for id in class.iter().flat_map(|c| c.contact_teachers.iter()) {
            if let Some(p) = self.staff_member(id).await? {
                contact_teachers.push(p);
            }
        }
        Ok(Some(PupilContext {
            pupil,
            school,
            class,
            contact_teachers,
        }))
    }

    /// One class by id.
    pub async fn class(&self, id: &str) -> Result<Option<RosterClass>, StoreError> {
        sqlx::query("SELECT id, school, name, grade, contact_teachers FROM classes WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| class_from_row(&r))
            .transpose()
    }

    /// The classes of a school, by name.
    pub async fn school_classes(&self, school: &str) -> Result<Vec<RosterClass>, StoreError> {
        sqlx::query(
            "SELECT id, school, name, grade, contact_teachers FROM classes WHERE school = $1 ORDER BY grade, name",
        )
        .bind(school)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(class_from_row)
        .collect()
    }

    /// The pupils of a school, by id.
    pub async fn school_pupils(&self, school: &str) -> Result<Vec<RosterPupil>, StoreError> {
        sqlx::query(
            "SELECT id, school, class, grade, given_name, family_name FROM pupils WHERE school = $1 ORDER BY id",
        )
        .bind(school)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(pupil_from_row)
        .collect()
    }

    /// One staff member by id.
    pub async fn staff_member(&self, id: &str) -> Result<Option<RosterPerson>, StoreError> {
        sqlx::query("SELECT id, given_name, family_name, matrix_id, school FROM staff WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| person_from_row(&r))
            .transpose()
    }

    /// Staff members by Matrix id (a person may be listed by several sources).
    pub async fn staff_by_matrix_id(&self, matrix_id: &str) -> Result<Vec<RosterPerson>, StoreError> {
        sqlx::query("SELECT id, given_name, family_name, matrix_id, school FROM staff WHERE matrix_id = $1 ORDER BY id")
            .bind(matrix_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(person_from_row)
            .collect()
    }

    /// The schools on the roster, by id.
    pub async fn schools(&self) -> Result<Vec<RosterSchool>, StoreError> {
        sqlx::query("SELECT id, name FROM schools ORDER BY id")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                Ok(RosterSchool {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                })
            })
            .collect()
    }
}

/// Writes every school, class, pupil and staff member of `roster` (by id)
/// inside an open transaction.
pub(super) async fn write_roster(conn: &mut sqlx::AnyConnection, roster: &Roster) -> Result<(), StoreError> {
    let stamp = now();
    for s in &roster.schools {
        sqlx::query(
            "INSERT INTO schools (id, name, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, updated_at = excluded.updated_at",
        )
        .bind(s.id.as_str())
        .bind(s.name.as_str())
        .bind(stamp.as_str())
        .execute(&mut *conn)
        .await?;
    }
    for c in &roster.classes {
        sqlx::query(
            "INSERT INTO classes (id, school, name, grade, contact_teachers, updated_at) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (id) DO UPDATE SET school = excluded.school, name = excluded.name, grade = excluded.grade, \
             contact_teachers = excluded.contact_teachers, updated_at = excluded.updated_at",
        )
        .bind(c.id.as_str())
        .bind(c.school.as_str())
        .bind(c.name.as_str())
        .bind(i64::from(c.grade))
        .bind(serde_json::to_string(&c.contact_teachers).unwrap_or_default())
        .bind(stamp.as_str())
        .execute(&mut *conn)
        .await?;
    }
    for p in &roster.pupils {
        sqlx::query(
            "INSERT INTO pupils (id, school, class, grade, given_name, family_name, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (id) DO UPDATE SET school = excluded.school, class = excluded.class, grade = excluded.grade, \
             given_name = excluded.given_name, family_name = excluded.family_name, updated_at = excluded.updated_at",
        )
        .bind(p.id.as_str())
        .bind(p.school.as_str())
        .bind(p.class.as_deref())
        .bind(i64::from(p.grade))
        .bind(p.given_name.as_str())
        .bind(p.family_name.as_str())
        .bind(stamp.as_str())
        .execute(&mut *conn)
        .await?;
    }
    for p in &roster.staff {
        sqlx::query(
            "INSERT INTO staff (id, given_name, family_name, matrix_id, school, updated_at) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (id) DO UPDATE SET given_name = excluded.given_name, family_name = excluded.family_name, \
             matrix_id = excluded.matrix_id, school = excluded.school, updated_at = excluded.updated_at",
        )
        .bind(p.id.as_str())
        .bind(p.given_name.as_str())
        .bind(p.family_name.as_str())
        .bind(p.matrix_id.as_deref())
        .bind(p.school.as_deref())
        .bind(stamp.as_str())
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

fn grade(row: &AnyRow) -> Result<u8, StoreError> {
    let g: i64 = row.try_get("grade")?;
    u8::try_from(g).map_err(|_| StoreError::Corrupt(format!("grade {g}")))
}

fn pupil_from_row(row: &AnyRow) -> Result<RosterPupil, StoreError> {
    Ok(RosterPupil {
        id: row.try_get("id")?,
        school: row.try_get("school")?,
        class: row.try_get("class")?,
        grade: grade(row)?,
        given_name: row.try_get("given_name")?,
        family_name: row.try_get("family_name")?,
    })
}

fn class_from_row(row: &AnyRow) -> Result<RosterClass, StoreError> {
    let teachers: String = row.try_get("contact_teachers")?;
    Ok(RosterClass {
        id: row.try_get("id")?,
        school: row.try_get("school")?,
        name: row.try_get("name")?,
        grade: grade(row)?,
        contact_teachers: serde_json::from_str(&teachers)
            .map_err(|_| StoreError::Corrupt(format!("classes.contact_teachers «{teachers}»")))?,
    })
}

fn person_from_row(row: &AnyRow) -> Result<RosterPerson, StoreError> {
    Ok(RosterPerson {
        id: row.try_get("id")?,
        given_name: row.try_get("given_name")?,
        family_name: row.try_get("family_name")?,
        matrix_id: row.try_get("matrix_id")?,
        school: row.try_get("school")?,
    })
}
