//! Deterministic school directory for Musterstadt: pupils, teachers, staff and school admins
//! in classes that fit each school type, consistent with the generated device fleet.
//!
//! The directory is what a UCS@school (Kelvin) or IServ server would hold, and it has to agree
//! with the MDMs' user fields so that linking devices to persons can be tested: every
//! [`DeviceUser`](crate::generator::DeviceUser) of the fleet with the same seed is a person
//! here, with that username and email, at that device's school (teachers as teachers), except
//! about one in fifty usernames, left out on purpose so that some device hints match nobody.
//! A username on devices at several schools is one person: a teacher then belongs to each of
//! those schools, a pupil only to the first.
//!
//! Everyone else is generated with a digit in the username (`lea.mueller3`), which device
//! users never have, so a generated person can never answer a hint meant for a left-out one.
//! Epochs model the school year turning over: in each step some pupils leave and new ones
//! arrive, so a second sync sees persons who left.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use chrono::NaiveDate;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::generator::Fleet;
use crate::musterstadt::{self, login_part, School, SchoolType, FIRST_NAMES, LAST_NAMES};

/// `source_uid` of every person: the school administration software the ids come from.
pub const SOURCE_UID: &str = "schulverwaltung";
/// One device username in this many is left out of the directory (about 2 %).
pub const LEFT_OUT_ONE_IN: u64 = 50;

/// Random streams: schools, epochs and device-user classes read separate streams, so a change
/// to one does not reshuffle the others.
const STREAM_SCHOOL: u64 = 1 << 56;
const STREAM_EPOCH: u64 = 2 << 56;
const STREAM_SECOND_SCHOOL: u64 = 3 << 56;
const STREAM_DEVICE_USER: u64 = 4 << 56;

/// A person's role at one school, as UCS@school names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Student,
    Teacher,
    Staff,
    SchoolAdmin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Student, Role::Teacher, Role::Staff, Role::SchoolAdmin];

    /// `student`, `teacher`, `staff` or `school_admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Student => "student",
            Role::Teacher => "teacher",
            Role::Staff => "staff",
            Role::SchoolAdmin => "school_admin",
        }
    }

    /// The role of a role name; `pupil` is UCS@school's old name for `student`.
    pub fn from_name(name: &str) -> Option<Role> {
        match name.trim().to_ascii_lowercase().as_str() {
            "student" | "pupil" => Some(Role::Student),
            "teacher" => Some(Role::Teacher),
            "staff" => Some(Role::Staff),
            "school_admin" => Some(Role::SchoolAdmin),
            _ => None,
        }
    }

    /// The LDAP container below `cn=users,ou=SCHOOL` (docs/vendors/ucs-kelvin-ldap.md#ldap-layout).
    pub fn container(self) -> &'static str {
        match self {
            Role::Student => "schueler",
            Role::Teacher => "lehrer",
            Role::Staff => "mitarbeiter",
            Role::SchoolAdmin => "admins",
        }
    }
}

/// A person's place at one school.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub school: School,
    pub role: Role,
    /// The class of a pupil, without the school prefix (`3a`); `None` for everyone else.
    pub class: Option<String>,
}

/// One person of the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// Stable across epochs; pupils arriving in later epochs get numbers past epoch 0's.
    pub number: u32,
    pub username: String,
    pub first_name: String,
    pub last_name: String,
    /// Pupils of primary schools have no mailbox.
    pub email: Option<String>,
    /// Served because Kelvin serves it; bestand must never keep it.
    pub birthday: NaiveDate,
    /// `ucsschoolRecordUID`, e.g. `SV-0481516`.
    pub record_uid: String,
    /// `ucsschoolSourceUID`: always [`SOURCE_UID`].
    pub source_uid: &'static str,
    /// The LDAP `entryUUID`.
    pub entry_uuid: String,
    /// The first one is the person's primary school.
    pub memberships: Vec<Membership>,
    /// Whether a device of the fleet names this person as its user.
    pub device_user: bool,
}

impl Person {
    /// The primary school (that of the first membership).
    pub fn school(&self) -> Option<School> {
        self.memberships.first().map(|m| m.school)
    }

    /// Whether the person has `role` at `school` (compared by site id).
    pub fn has(&self, school: &School, role: Role) -> bool {
        self.memberships
            .iter()
            .any(|m| m.school.site_id == school.site_id && m.role == role)
    }

    /// The person's distinct roles, in [`Role`] order.
    pub fn roles(&self) -> Vec<Role> {
        let roles: BTreeSet<Role> = self.memberships.iter().map(|m| m.role).collect();
        roles.into_iter().collect()
    }

    /// The person's distinct schools, primary first.
    pub fn schools(&self) -> Vec<School> {
        let mut out: Vec<School> = Vec::new();
        for membership in &self.memberships {
            if !out.iter().any(|s| s.site_id == membership.school.site_id) {
                out.push(membership.school);
            }
        }
        out
    }
}

/// The OU name of a school in the directory: its tag without hyphens (`GSLindenweg`), since
/// UCS@school school names allow only letters, digits and underscores.
pub fn ou(school: &School) -> String {
    school.tag.replace('-', "")
}

/// How many pupils change per epoch step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirectoryChanges {
    /// Pupils who leave (never device users, so device hints stay consistent).
    pub leave: usize,
    /// New pupils.
    pub join: usize,
}

impl DirectoryChanges {
    /// About 1 % of the pupils leave and 0.7 % arrive per step.
    pub fn proportional(pupils: usize) -> DirectoryChanges {
        DirectoryChanges {
            leave: (pupils / 100).max(1),
            join: (pupils / 150).max(1),
        }
    }
}

/// Epoch-0 data every epoch is derived from.
struct Base {
    seed: u64,
    schools: &'static [School],
    /// Pupils per school as generated, the weights for where new pupils arrive.
    pupil_weights: Vec<u32>,
    classes: Vec<Vec<String>>,
    persons: Arc<Vec<Person>>,
    /// Numbers of generated pupils: the ones who may leave.
    leavers: Vec<u32>,
    next_number: u32,
    changes: DirectoryChanges,
    left_out: Vec<String>,
}

/// The directory as it is in one epoch, with lookups by username and by school and role.
struct View {
    persons: Arc<Vec<Person>>,
    by_username: HashMap<String, usize>,
    /// (school index, role) → person indexes, in person order.
    by_school_role: HashMap<(usize, Role), Vec<usize>>,
}

/// A deterministic directory: same seed and size, same persons. Cheap to clone.
#[derive(Clone)]
pub struct Directory {
    base: Arc<Base>,
    epoch: u32,
    view: Arc<View>,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory")
            .field("seed", &self.base.seed)
            .field("epoch", &self.epoch)
            .field("persons", &self.view.persons.len())
            .finish()
    }
}

/// Persons per role and school index that the generator aims at.
#[derive(Debug, Clone, Copy, Default)]
struct Targets {
    pupils: usize,
    teachers: usize,
    staff: usize,
    admins: usize,
}

impl Targets {
    fn get(&self, role: Role) -> usize {
        match role {
            Role::Student => self.pupils,
            Role::Teacher => self.teachers,
            Role::Staff => self.staff,
            Role::SchoolAdmin => self.admins,
        }
    }

    fn total(&self) -> usize {
        self.pupils + self.teachers + self.staff + self.admins
    }
}

/// The natural size of a school: its pupils, one teacher per nine, some staff, one admin.
fn natural(school: &School) -> Targets {
    let pupils = school.pupils as usize;
    Targets {
        pupils,
        teachers: ((pupils + 4) / 9).max(2),
        staff: 1 + pupils / 300,
        admins: 1,
    }
}

impl Directory {
    /// The demo directory: the Musterstadt schools at their natural size (about 15,000 pupils,
    /// 1,700 teachers, some staff and one admin per school), consistent with
    /// `Fleet::musterstadt(seed)`.
    pub fn musterstadt(seed: u64) -> Directory {
        Directory::with_fleet(&Fleet::musterstadt(seed), None)
    }

    /// A directory of `persons` persons (exactly, unless the fleet's device users alone are
    /// more), consistent with `Fleet::musterstadt(seed)`; for benchmarks.
    pub fn new(seed: u64, persons: usize) -> Directory {
        Directory::with_fleet(&Fleet::musterstadt(seed), Some(persons))
    }

    /// A directory consistent with `fleet` (same seed), of `persons` persons or, with `None`,
    /// the Musterstadt schools at their natural size.
    pub fn with_fleet(fleet: &Fleet, persons: Option<usize>) -> Directory {
        let base = Arc::new(build(fleet, persons));
        let view = Arc::new(View::new(Arc::clone(&base.persons), base.schools));
        Directory {
            base,
            epoch: 0,
            view,
        }
    }

    /// The directory as it is in `epoch`: each step after 0 removes
    /// [`DirectoryChanges::leave`] pupils and adds [`DirectoryChanges::join`] new ones.
    pub fn at_epoch(&self, epoch: u32) -> Directory {
        if epoch == self.epoch {
            return self.clone();
        }
        let persons = if epoch == 0 {
            Arc::clone(&self.base.persons)
        } else {
            Arc::new(self.base.persons_at(epoch))
        };
        Directory {
            base: Arc::clone(&self.base),
            epoch,
            view: Arc::new(View::new(persons, self.base.schools)),
        }
    }

    pub fn seed(&self) -> u64 {
        self.base.seed
    }

    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    pub fn changes(&self) -> DirectoryChanges {
        self.base.changes
    }

    pub fn len(&self) -> usize {
        self.view.persons.len()
    }

    pub fn is_empty(&self) -> bool {
        self.view.persons.is_empty()
    }

    /// Every person, device users first, then school by school.
    pub fn persons(&self) -> &[Person] {
        &self.view.persons
    }

    /// The person with this username (exact, as usernames are lower case).
    pub fn person(&self, username: &str) -> Option<&Person> {
        self.view
            .by_username
            .get(username)
            .map(|&index| &self.view.persons[index])
    }

    /// The schools of the directory (the 32 Musterstadt schools, by site id).
    pub fn schools(&self) -> &'static [School] {
        self.base.schools
    }

    /// The school whose [`ou`] is `name`, compared without regard to case as LDAP does.
    pub fn school_by_ou(&self, name: &str) -> Option<School> {
        self.base
            .schools
            .iter()
            .find(|school| ou(school).eq_ignore_ascii_case(name.trim()))
            .copied()
    }

    /// The persons with `role` at `school`, in directory order.
    pub fn members(&self, school: &School, role: Role) -> impl Iterator<Item = &Person> + '_ {
        let index = self
            .base
            .schools
            .iter()
            .position(|s| s.site_id == school.site_id);
        index
            .and_then(|index| self.view.by_school_role.get(&(index, role)))
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|&i| &self.view.persons[i])
    }

    /// The classes of `school`, whether or not they have pupils.
    pub fn classes(&self, school: &School) -> &[String] {
        self.base
            .schools
            .iter()
            .position(|s| s.site_id == school.site_id)
            .map(|index| self.base.classes[index].as_slice())
            .unwrap_or_default()
    }

    /// How many persons have `role` at some school.
    pub fn count(&self, role: Role) -> usize {
        self.view
            .persons
            .iter()
            .filter(|p| p.memberships.iter().any(|m| m.role == role))
            .count()
    }

    /// The device usernames left out on purpose, sorted.
    pub fn left_out_device_users(&self) -> &[String] {
        &self.base.left_out
    }

    /// Whether the fleet's device username `username` is one of those left out on purpose.
    pub fn is_left_out(&self, username: &str) -> bool {
        is_left_out(self.base.seed, username)
    }
}

impl View {
    fn new(persons: Arc<Vec<Person>>, schools: &[School]) -> View {
        let mut by_username = HashMap::with_capacity(persons.len());
        let mut by_school_role: HashMap<(usize, Role), Vec<usize>> = HashMap::new();
        let site_index: HashMap<u32, usize> = schools
            .iter()
            .enumerate()
            .map(|(index, school)| (school.site_id, index))
            .collect();
        for (index, person) in persons.iter().enumerate() {
            by_username.insert(person.username.clone(), index);
            let mut seen: Vec<(usize, Role)> = Vec::new();
            for membership in &person.memberships {
                let Some(&school) = site_index.get(&membership.school.site_id) else {
                    continue;
                };
                let key = (school, membership.role);
                if !seen.contains(&key) {
                    seen.push(key);
                    by_school_role.entry(key).or_default().push(index);
                }
            }
        }
        View {
            persons,
            by_username,
            by_school_role,
        }
    }
}

impl Base {
    fn rng(&self, stream: u64) -> ChaCha8Rng {
        rng(self.seed, stream)
    }

    /// The persons of `epoch` (at least 1), derived from epoch 0 step by step.
    fn persons_at(&self, epoch: u32) -> Vec<Person> {
        let mut gone: HashSet<u32> = HashSet::new();
        let mut joined: Vec<Person> = Vec::new();
        let mut taken: HashSet<String> = self.persons.iter().map(|p| p.username.clone()).collect();
        let mut counters: HashMap<String, u32> = HashMap::new();
        let total_weight: u32 = self.pupil_weights.iter().sum();
        for step in 1..=epoch {
            let mut rng = self.rng(STREAM_EPOCH | u64::from(step));
            let available = self.leavers.len().saturating_sub(gone.len());
            let leave = self.changes.leave.min(available);
            let mut left = 0;
            while left < leave {
                let number = self.leavers[rng.random_range(0..self.leavers.len())];
                if gone.insert(number) {
                    left += 1;
                }
            }
            for j in 0..self.changes.join {
                let number = self.next_number + (step - 1) * self.changes.join as u32 + j as u32;
                let school_index = pick_weighted(&mut rng, &self.pupil_weights, total_weight);
                let school = self.schools[school_index];
                let classes = &self.classes[school_index];
                let class = (!classes.is_empty())
                    .then(|| classes[rng.random_range(0..classes.len())].clone());
                let (first, last) = random_name(&mut rng);
                let username = unique_username(
                    &format!("{}.{}", login_part(first), login_part(last)),
                    &mut counters,
                    &mut taken,
                );
                joined.push(self.person(
                    number,
                    username,
                    first.to_string(),
                    last.to_string(),
                    school,
                    Role::Student,
                    class,
                    &mut rng,
                ));
            }
        }
        self.persons
            .iter()
            .filter(|p| !gone.contains(&p.number))
            .cloned()
            .chain(joined)
            .collect()
    }

    #[allow(clippy::too_many_arguments)] // one person's facts, read as a line
    fn person(
        &self,
        number: u32,
        username: String,
        first_name: String,
        last_name: String,
        school: School,
        role: Role,
        class: Option<String>,
        rng: &mut ChaCha8Rng,
    ) -> Person {
        let email = match (role, school.school_type) {
            (Role::Student, SchoolType::Grundschule | SchoolType::Foerderschule) => None,
            _ => Some(format!("{username}@{}", school.mail_domain())),
        };
        Person {
            number,
            birthday: birthday(rng, role, class.as_deref()),
            record_uid: record_uid(self.seed, number),
            source_uid: SOURCE_UID,
            entry_uuid: entry_uuid(self.seed, number),
            username,
            first_name,
            last_name,
            email,
            memberships: vec![Membership {
                school,
                role,
                class,
            }],
            device_user: false,
        }
    }
}

/// Generates epoch 0.
fn build(fleet: &Fleet, persons: Option<usize>) -> Base {
    let seed = fleet.seed();
    let schools = musterstadt::school_table();
    let targets = targets(schools, persons);
    let classes: Vec<Vec<String>> = schools
        .iter()
        .zip(&targets)
        .map(|(school, target)| class_names(school, target.pupils))
        .collect();
    let mut base = Base {
        seed,
        schools,
        pupil_weights: targets
            .iter()
            .map(|t| u32::try_from(t.pupils).unwrap_or(u32::MAX).max(1))
            .collect(),
        classes,
        persons: Arc::new(Vec::new()),
        leavers: Vec::new(),
        next_number: 0,
        changes: DirectoryChanges::proportional(0),
        left_out: Vec::new(),
    };
    let site_index: HashMap<u32, usize> = schools
        .iter()
        .enumerate()
        .map(|(index, school)| (school.site_id, index))
        .collect();

    // Device users first: they fix usernames, emails and schools.
    let mut people: Vec<Person> = Vec::new();
    let mut by_username: HashMap<String, usize> = HashMap::new();
    let mut left_out: BTreeSet<String> = BTreeSet::new();
    let mut device_counts: Vec<Targets> = vec![Targets::default(); schools.len()];
    for index in 0..fleet.len() {
        let Some(device) = fleet.device(index) else {
            continue;
        };
        let Some(user) = device.user else { continue };
        let Some(&school_index) = site_index.get(&device.school.site_id) else {
            continue;
        };
        if is_left_out(seed, &user.username) {
            left_out.insert(user.username);
            continue;
        }
        let role = if user.position == "Lehrkraft" {
            Role::Teacher
        } else {
            Role::Student
        };
        if let Some(&known) = by_username.get(&user.username) {
            let person: &mut Person = &mut people[known];
            if role == Role::Teacher && !person.has(&device.school, Role::Teacher) {
                person.memberships.push(Membership {
                    school: device.school,
                    role,
                    class: None,
                });
            }
            continue;
        }
        let class = match role {
            Role::Student => {
                let classes = &base.classes[school_index];
                (!classes.is_empty()).then(|| {
                    let pick = splitmix64(seed ^ fnv1a(&user.username)) % classes.len() as u64;
                    classes[pick as usize].clone()
                })
            }
            _ => None,
        };
        let (first, last) = user
            .real_name
            .split_once(' ')
            .map(|(first, last)| (first.to_string(), last.to_string()))
            .unwrap_or_else(|| (String::new(), user.real_name.clone()));
        let number = people.len() as u32;
        let mut rng = base.rng(STREAM_DEVICE_USER | u64::from(number));
        let mut person = base.person(
            number,
            user.username.clone(),
            first,
            last,
            device.school,
            role,
            class,
            &mut rng,
        );
        // The MDM knows this address, so the directory has it even for a primary pupil.
        person.email = Some(user.email);
        person.device_user = true;
        let counts = &mut device_counts[school_index];
        match role {
            Role::Teacher => counts.teachers += 1,
            _ => counts.pupils += 1,
        }
        by_username.insert(user.username, people.len());
        people.push(person);
    }

    // How many to generate per school and role; the device users count towards the targets.
    let mut generated: Vec<Targets> = targets
        .iter()
        .zip(&device_counts)
        .map(|(target, devices)| Targets {
            pupils: target.pupils.saturating_sub(devices.pupils),
            teachers: target.teachers.saturating_sub(devices.teachers),
            staff: target.staff,
            admins: target.admins,
        })
        .collect();
    let wanted: usize = targets.iter().map(Targets::total).sum();
    let mut excess =
        (people.len() + generated.iter().map(Targets::total).sum::<usize>()).saturating_sub(wanted);
    while excess > 0 {
        let Some(largest) = generated
            .iter_mut()
            .filter(|g| g.pupils > 0)
            .max_by_key(|g| g.pupils)
        else {
            break;
        };
        largest.pupils -= 1;
        excess -= 1;
    }

    let mut taken: HashSet<String> = by_username.keys().cloned().collect();
    let mut counters: HashMap<String, u32> = HashMap::new();
    let mut leavers = Vec::new();
    let mut generated_teachers: Vec<usize> = Vec::new();
    for (school_index, (school, counts)) in schools.iter().zip(&generated).enumerate() {
        let mut rng = base.rng(STREAM_SCHOOL | school_index as u64);
        let classes = base.classes[school_index].clone();
        for role in Role::ALL {
            for k in 0..counts.get(role) {
                let (first, last) = random_name(&mut rng);
                let login = match role {
                    Role::Teacher => format!(
                        "{}.{}",
                        login_part(first).chars().next().unwrap_or('x'),
                        login_part(last)
                    ),
                    Role::SchoolAdmin if k == 0 => {
                        format!("admin.{}", ou(school).to_lowercase())
                    }
                    _ => format!("{}.{}", login_part(first), login_part(last)),
                };
                let username = if role == Role::SchoolAdmin && k == 0 {
                    taken.insert(login.clone());
                    login
                } else {
                    unique_username(&login, &mut counters, &mut taken)
                };
                let class = (role == Role::Student && !classes.is_empty())
                    .then(|| classes[k % classes.len()].clone());
                let number = people.len() as u32;
                match role {
                    Role::Student => leavers.push(number),
                    Role::Teacher => generated_teachers.push(people.len()),
                    _ => {}
                }
                let person = base.person(
                    number,
                    username,
                    first.to_string(),
                    last.to_string(),
                    *school,
                    role,
                    class,
                    &mut rng,
                );
                people.push(person);
            }
        }
    }

    // About 3 % of the teachers also teach at a second school of the authority.
    let mut rng = base.rng(STREAM_SECOND_SCHOOL);
    for &index in &generated_teachers {
        if !rng.random_ratio(3, 100) || schools.len() < 2 {
            continue;
        }
        let person = &mut people[index];
        let Some(primary) = person.school() else {
            continue;
        };
        let other = schools[rng.random_range(0..schools.len())];
        if other.site_id != primary.site_id {
            person.memberships.push(Membership {
                school: other,
                role: Role::Teacher,
                class: None,
            });
        }
    }

    base.next_number = people.len() as u32;
    base.changes = DirectoryChanges::proportional(leavers.len());
    base.leavers = leavers;
    base.left_out = left_out.into_iter().collect();
    base.persons = Arc::new(people);
    base
}

/// Per school: how many pupils, teachers, staff and admins to have. `None` is the natural
/// Musterstadt; `Some(n)` scales pupils, teachers and staff so that the total is `n`.
fn targets(schools: &[School], persons: Option<usize>) -> Vec<Targets> {
    let natural: Vec<Targets> = schools.iter().map(natural).collect();
    let Some(wanted) = persons else {
        return natural;
    };
    let admins = schools.len().min(wanted);
    let rest = wanted - admins;
    let natural_rest: usize = natural.iter().map(|t| t.total() - t.admins).sum();
    let factor = rest as f64 / natural_rest.max(1) as f64;
    let scale = |value: usize| (value as f64 * factor).floor() as usize;
    let mut out: Vec<Targets> = natural
        .iter()
        .enumerate()
        .map(|(index, t)| Targets {
            pupils: scale(t.pupils),
            teachers: scale(t.teachers),
            staff: scale(t.staff),
            admins: usize::from(index < admins),
        })
        .collect();
    let assigned: usize = out.iter().map(Targets::total).sum();
    // Floors leave a few persons over; they become pupils, one per school in turn.
    let count = out.len().max(1);
    for extra in 0..wanted.saturating_sub(assigned) {
        if let Some(target) = out.get_mut(extra % count) {
            target.pupils += 1;
        }
    }
    out
}

/// The classes of a school of `pupils` pupils, named as the school type names them.
fn class_names(school: &School, pupils: usize) -> Vec<String> {
    let letters = |grade_pupils: f64, per_class: f64| -> usize {
        ((grade_pupils / per_class).round() as usize).clamp(1, 26)
    };
    let graded = |grades: std::ops::RangeInclusive<u32>, parallel: usize| -> Vec<String> {
        grades
            .flat_map(|grade| {
                (0..parallel).map(move |letter| format!("{grade}{}", (b'a' + letter as u8) as char))
            })
            .collect()
    };
    let pupils = pupils as f64;
    match school.school_type {
        SchoolType::Grundschule => graded(1..=4, letters(pupils / 4.0, 24.0)),
        SchoolType::Hauptschule | SchoolType::Realschule => {
            graded(5..=10, letters(pupils / 6.0, 26.0))
        }
        SchoolType::Gesamtschule => {
            let mut classes = graded(5..=10, letters(pupils * 0.8 / 6.0, 27.0));
            classes.extend(["11", "12", "13"].map(String::from));
            classes
        }
        SchoolType::Gymnasium => {
            let mut classes = graded(5..=10, letters(pupils * 0.75 / 6.0, 27.0));
            classes.extend(["11", "12"].map(String::from));
            classes
        }
        SchoolType::Foerderschule => {
            // Unter-, Mittel- and Oberstufe groups of about 14 pupils.
            let count = ((pupils / 14.0).round() as usize).max(3);
            (0..count)
                .map(|i| format!("{}{}", ["U", "M", "O"][i % 3], i / 3 + 1))
                .collect()
        }
        SchoolType::Berufsschule => {
            let programs: &[&str] = if school.tag.contains("Technik") {
                &["FIS", "FIA", "ELK", "MEC", "KFZ", "IM"]
            } else {
                &["KBM", "IK", "BKA", "VFA", "EH", "STF"]
            };
            let years = [24, 25, 26];
            let groups = (programs.len() * years.len()) as f64;
            let parallel = letters(pupils / groups, 24.0);
            programs
                .iter()
                .flat_map(|program| {
                    years.iter().flat_map(move |year| {
                        (0..parallel).map(move |letter| {
                            format!("{program}{year}{}", (b'a' + letter as u8) as char)
                        })
                    })
                })
                .collect()
        }
    }
}

fn rng(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xd1ec_7043);
    rng.set_stream(stream);
    rng
}

fn random_name(rng: &mut ChaCha8Rng) -> (&'static str, &'static str) {
    (
        FIRST_NAMES[rng.random_range(0..FIRST_NAMES.len())],
        LAST_NAMES[rng.random_range(0..LAST_NAMES.len())],
    )
}

/// `base` with the next free number appended (`lea.mueller1`, `lea.mueller2`, ...).
fn unique_username(
    base: &str,
    counters: &mut HashMap<String, u32>,
    taken: &mut HashSet<String>,
) -> String {
    let counter = counters.entry(base.to_string()).or_insert(0);
    loop {
        *counter += 1;
        let candidate = format!("{base}{counter}");
        if taken.insert(candidate.clone()) {
            return candidate;
        }
    }
}

fn pick_weighted(rng: &mut ChaCha8Rng, weights: &[u32], total: u32) -> usize {
    let mut ticket = rng.random_range(0..total.max(1));
    for (index, &weight) in weights.iter().enumerate() {
        if ticket < weight {
            return index;
        }
        ticket -= weight;
    }
    weights.len().saturating_sub(1)
}

/// A birthday fitting the role and, for pupils, the grade of the class.
fn birthday(rng: &mut ChaCha8Rng, role: Role, class: Option<&str>) -> NaiveDate {
    let year = match role {
        Role::Student => {
            let grade: Option<i32> = class.and_then(|class| {
                let digits: String = class.chars().take_while(char::is_ascii_digit).collect();
                digits.parse().ok()
            });
            match grade {
                // Grade 1 in autumn 2026: born 2019/2020.
                Some(grade) if (1..=13).contains(&grade) => 2020 - grade + rng.random_range(0..=1),
                _ => rng.random_range(2003..=2012),
            }
        }
        Role::Teacher => rng.random_range(1961..=1998),
        Role::Staff | Role::SchoolAdmin => rng.random_range(1962..=2002),
    };
    let day_of_year = rng.random_range(1..=365);
    NaiveDate::from_yo_opt(year, day_of_year)
        .or_else(|| NaiveDate::from_ymd_opt(year, 1, 1))
        .unwrap_or_default()
}

/// `SV-` and seven digits, a bijection of the person number so ids are unique but not
/// sequential.
fn record_uid(seed: u64, number: u32) -> String {
    const MODULUS: u64 = 10_000_000;
    // Coprime to 10, so the map is a bijection below 10 million persons.
    const FACTOR: u64 = 7_919;
    let offset = splitmix64(seed ^ 0x5eed_0001) % MODULUS;
    format!("SV-{:07}", (u64::from(number) * FACTOR + offset) % MODULUS)
}

fn entry_uuid(seed: u64, number: u32) -> String {
    let high = splitmix64(splitmix64(seed ^ 0xe47a_1d00) ^ u64::from(number));
    let low = splitmix64(high);
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        high >> 32,
        (high >> 16) & 0xffff,
        high & 0xfff,
        0x8000 | ((low >> 48) & 0x3fff),
        low & 0xffff_ffff_ffff
    )
}

/// Whether `username` is one of the device users left out of the directory on purpose.
fn is_left_out(seed: u64, username: &str) -> bool {
    splitmix64(seed ^ fnv1a(username) ^ 0x1ef7_0000).is_multiple_of(LEFT_OUT_ONE_IN)
}

/// FNV-1a: deterministic across runs, unlike the std hasher.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// SplitMix64 finaliser: a cheap, well-mixing bijection of 64-bit values.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn musterstadt_counts_are_in_range_and_usernames_unique() {
        let directory = Directory::musterstadt(42);
        let pupils = directory.count(Role::Student);
        let teachers = directory.count(Role::Teacher);
        assert!((14_500..=15_500).contains(&pupils), "{pupils}");
        assert!((1_550..=1_850).contains(&teachers), "{teachers}");
        assert!((60..=200).contains(&directory.count(Role::Staff)));
        assert_eq!(directory.count(Role::SchoolAdmin), 32);
        let usernames: HashSet<&str> = directory
            .persons()
            .iter()
            .map(|p| p.username.as_str())
            .collect();
        assert_eq!(usernames.len(), directory.len());
        let record_uids: HashSet<&str> = directory
            .persons()
            .iter()
            .map(|p| p.record_uid.as_str())
            .collect();
        assert_eq!(record_uids.len(), directory.len());
        let uuids: HashSet<&str> = directory
            .persons()
            .iter()
            .map(|p| p.entry_uuid.as_str())
            .collect();
        assert_eq!(uuids.len(), directory.len());
        for school in directory.schools() {
            assert_eq!(
                directory.members(school, Role::SchoolAdmin).count(),
                1,
                "{}",
                school.name
            );
        }
    }

    #[test]
    fn device_users_are_persons_except_about_two_percent() {
        let seed = 42;
        let fleet = Fleet::musterstadt(seed);
        let directory = Directory::musterstadt(seed);
        let (mut users, mut present) = (0usize, 0usize);
        let mut first_school: HashMap<String, u32> = HashMap::new();
        // Fleet order is the order in which the directory met its device users.
        for device in (0..fleet.len()).filter_map(|index| fleet.device(index)) {
            let Some(user) = device.user else { continue };
            users += 1;
            let Some(person) = directory.person(&user.username) else {
                assert!(directory.is_left_out(&user.username), "{}", user.username);
                continue;
            };
            present += 1;
            assert!(person.device_user);
            let first = *first_school
                .entry(user.username.clone())
                .or_insert(device.school.site_id);
            if user.position == "Lehrkraft" {
                assert!(
                    person.has(&device.school, Role::Teacher),
                    "{}",
                    user.username
                );
            } else {
                assert_eq!(person.roles(), [Role::Student]);
                assert_eq!(person.memberships.len(), 1);
                assert!(person.memberships[0].class.is_some());
                assert_eq!(person.school().map(|s| s.site_id), Some(first));
            }
            if first == device.school.site_id {
                // The first device of a person fixed its school and its address.
                assert_eq!(person.school().map(|s| s.site_id), Some(first));
                assert_eq!(person.email.as_deref(), Some(user.email.as_str()));
            }
        }
        let share = present as f64 / users as f64;
        assert!((0.95..=0.995).contains(&share), "{present} of {users}");
        let left_out = directory.left_out_device_users();
        assert!(!left_out.is_empty());
        assert!(left_out.iter().all(|name| directory.person(name).is_none()));
        let device_persons = directory.persons().iter().filter(|p| p.device_user).count();
        assert_eq!(device_persons, first_school.len());
    }

    #[test]
    fn classes_fit_the_school_type() {
        let directory = Directory::musterstadt(1);
        let by_tag = |tag: &str| {
            directory
                .schools()
                .iter()
                .find(|s| s.tag == tag)
                .copied()
                .unwrap()
        };
        let lindenweg = directory.classes(&by_tag("GS-Lindenweg"));
        assert!(lindenweg.contains(&"1a".to_string()) && lindenweg.contains(&"4c".to_string()));
        assert!(!lindenweg.iter().any(|c| c.starts_with('5')));
        let goethe = directory.classes(&by_tag("GY-Goethe"));
        assert!(goethe.contains(&"5a".to_string()) && goethe.contains(&"12".to_string()));
        let technik = directory.classes(&by_tag("BK-Technik"));
        assert!(technik.contains(&"FIS24a".to_string()), "{technik:?}");
        for person in directory.persons() {
            for membership in &person.memberships {
                match (&membership.class, membership.role) {
                    (Some(class), Role::Student) => {
                        assert!(directory.classes(&membership.school).contains(class))
                    }
                    (None, Role::Student) => panic!("{} has no class", person.username),
                    (Some(_), _) => panic!("{} is no pupil but has a class", person.username),
                    (None, _) => {}
                }
            }
        }
        // Some teachers teach at two schools.
        let two = directory
            .persons()
            .iter()
            .filter(|p| p.schools().len() > 1)
            .count();
        assert!(two > 20, "{two}");
    }

    #[test]
    fn any_size_is_exact_and_deterministic() {
        let small = Directory::new(5, 5000);
        assert_eq!(small.len(), 5000);
        let again = Directory::new(5, 5000);
        assert_eq!(small.persons(), again.persons());
        let large = Directory::new(5, 100_000);
        assert_eq!(large.len(), 100_000);
        assert!(large.count(Role::Student) > 85_000);
        let other_seed = Directory::new(6, 5000);
        assert_ne!(
            small.persons()[100].username,
            other_seed.persons()[100].username
        );
    }

    #[test]
    fn epochs_let_pupils_leave_and_arrive() {
        let directory = Directory::musterstadt(3);
        let next = directory.at_epoch(1);
        let changes = directory.changes();
        assert_eq!(next.len(), directory.len() - changes.leave + changes.join);
        let before: HashSet<&str> = directory
            .persons()
            .iter()
            .map(|p| p.username.as_str())
            .collect();
        let after: HashSet<&str> = next.persons().iter().map(|p| p.username.as_str()).collect();
        let left: Vec<&&str> = before.difference(&after).collect();
        let new: Vec<&&str> = after.difference(&before).collect();
        assert_eq!((left.len(), new.len()), (changes.leave, changes.join));
        for name in left {
            let person = directory.person(name).unwrap();
            assert!(!person.device_user && person.roles() == [Role::Student]);
        }
        assert_eq!(next.at_epoch(0).persons(), directory.persons());
        assert_eq!(directory.at_epoch(2).persons(), next.at_epoch(2).persons());
        assert_eq!(
            directory.at_epoch(2).len(),
            directory.len() - 2 * changes.leave + 2 * changes.join
        );
    }
}
