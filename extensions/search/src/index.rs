//! The in-memory index: every repository, the tags that point at its
//! manifests, and its description.
//!
//! A repository's description is that of its most recently pushed tag whose
//! manifest has one. Recency is a sequence number that grows with every tag
//! change the index applies, because neither the signals nor storage carry
//! a push time.

use std::collections::BTreeMap;

/// The strength of a match between a repository and a query. Results sort
/// by rank, then by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rank {
    /// The whole name equals the query, ignoring case.
    ExactName,
    /// The last component of the name equals the query, as `library/web`
    /// for `web`.
    ExactLastComponent,
    /// The name contains the query.
    NameContains,
    /// Only the description contains the query.
    DescriptionContains,
}

/// One repository in a page of results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub name: String,
    /// Empty when no tag's manifest has a description.
    pub description: String,
    pub rank: Rank,
}

/// One page of the results of a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchPage {
    /// The number of matching repositories, on all pages.
    pub total: usize,
    pub hits: Vec<Hit>,
}

/// The search index of one registry.
#[derive(Debug, Default)]
pub struct Index {
    repositories: BTreeMap<String, Repository>,
    /// The sequence number of the next tag change; a higher number is more
    /// recent.
    next_sequence: u64,
}

#[derive(Debug, Default)]
struct Repository {
    /// The name in lowercase, for matching.
    name_lowercase: String,
    tags: BTreeMap<String, Tag>,
    /// The description of the most recent tag that has one, cached.
    description: Option<Description>,
    /// The tag that the cached description comes from.
    description_tag: Option<String>,
}

#[derive(Debug, Clone)]
struct Tag {
    digest: String,
    description: Option<String>,
    sequence: u64,
}

#[derive(Debug, Clone)]
struct Description {
    text: String,
    lowercase: String,
}

impl Index {
    /// Returns the number of repositories.
    pub fn len(&self) -> usize {
        self.repositories.len()
    }

    /// Returns whether the index has no repository.
    pub fn is_empty(&self) -> bool {
        self.repositories.is_empty()
    }

    /// Returns whether the index has `repository`.
    pub fn contains(&self, repository: &str) -> bool {
        self.repositories.contains_key(repository)
    }

    /// Adds `repository` without tags. Does nothing when it is present.
    pub fn add_repository(&mut self, repository: &str) {
        self.repository_mut(repository);
    }

    /// Removes `repository` with its tags. Returns whether it was present.
    pub fn remove_repository(&mut self, repository: &str) -> bool {
        self.repositories.remove(repository).is_some()
    }

    /// Returns the digest that `tag` of `repository` points at.
    pub fn tag_digest(&self, repository: &str, tag: &str) -> Option<&str> {
        let tag = self.repositories.get(repository)?.tags.get(tag)?;
        Some(&tag.digest)
    }

    /// Points `tag` of `repository` at `digest`, whose manifest has
    /// `description`, as the most recent change. Adds the repository when
    /// it is missing.
    pub fn set_tag(
        &mut self,
        repository: &str,
        tag: &str,
        digest: &str,
        description: Option<String>,
    ) {
        let sequence = self.take_sequence();
        let entry = self.repository_mut(repository);
        let newest = description.clone();
        entry.tags.insert(
            tag.to_owned(),
            Tag {
                digest: digest.to_owned(),
                description,
                sequence,
            },
        );
        // The newest tag supplies the description when it has one. Only a
        // tag that supplied it and lost it makes the other tags count.
        match newest {
            Some(text) => entry.set_description(tag, text),
            None if entry.description_tag.as_deref() == Some(tag) => {
                entry.refresh_description();
            }
            None => {}
        }
    }

    /// Marks `tag` of `repository` as the most recent change when it points
    /// at `digest` already, as after a second push of the same manifest.
    /// Returns whether it did; the caller sets the tag otherwise.
    pub fn touch_tag(&mut self, repository: &str, tag: &str, digest: &str) -> bool {
        if self.tag_digest(repository, tag) != Some(digest) {
            return false;
        }
        let sequence = self.take_sequence();
        let entry = self.repository_mut(repository);
        let mut newest = None;
        if let Some(touched) = entry.tags.get_mut(tag) {
            touched.sequence = sequence;
            newest = touched.description.clone();
        }
        if let Some(text) = newest {
            entry.set_description(tag, text);
        }
        true
    }

    /// Removes `tag` of `repository`. The repository stays, because it may
    /// have other tags or untagged manifests; `repository_deleted` removes
    /// it.
    pub fn remove_tag(&mut self, repository: &str, tag: &str) {
        if let Some(entry) = self.repositories.get_mut(repository)
            && entry.tags.remove(tag).is_some()
            && entry.description_tag.as_deref() == Some(tag)
        {
            entry.refresh_description();
        }
    }

    /// Takes the recency of each tag that `previous` has with the same
    /// digest. The other tags, which `previous` missed, count as more recent
    /// than all of those, in their current order. Used after a rebuild from
    /// storage, which cannot see the order of pushes.
    pub fn keep_recency_of(&mut self, previous: &Index) {
        let offset = previous.next_sequence;
        let mut next_sequence = offset;
        for (name, entry) in &mut self.repositories {
            let previous_tags = previous.repositories.get(name).map(|p| &p.tags);
            for (tag_name, tag) in &mut entry.tags {
                let previous_sequence = previous_tags
                    .and_then(|tags| tags.get(tag_name))
                    .filter(|old| old.digest == tag.digest)
                    .map(|old| old.sequence);
                tag.sequence = previous_sequence.unwrap_or(offset + tag.sequence);
                next_sequence = next_sequence.max(tag.sequence + 1);
            }
            entry.refresh_description();
        }
        self.next_sequence = next_sequence.max(offset + self.next_sequence);
    }

    /// Returns the description of `repository`, or `None` when it has none
    /// or is missing.
    pub fn description(&self, repository: &str) -> Option<&str> {
        let description = self.repositories.get(repository)?.description.as_ref()?;
        Some(&description.text)
    }

    /// Returns page `page` (1-based) of `page_size` results for `query`,
    /// which matches names, and descriptions when `match_descriptions` is
    /// set, as a substring regardless of case. An empty query matches every
    /// repository. A page past the last one is empty.
    pub fn search(
        &self,
        query: &str,
        match_descriptions: bool,
        page: usize,
        page_size: usize,
    ) -> SearchPage {
        let query = query.to_lowercase();
        let mut matches: Vec<(Rank, &str, &Repository)> = self
            .repositories
            .iter()
            .filter_map(|(name, entry)| {
                let rank = entry.rank(&query, match_descriptions)?;
                Some((rank, name.as_str(), entry))
            })
            .collect();
        // The map iterates in name order and the sort is stable, so names
        // stay sorted within a rank.
        matches.sort_by_key(|(rank, _, _)| *rank);

        let total = matches.len();
        let start = page
            .checked_sub(1)
            .and_then(|skipped| skipped.checked_mul(page_size))
            .unwrap_or(usize::MAX);
        let hits = matches
            .into_iter()
            .skip(start)
            .take(page_size)
            .map(|(rank, name, entry)| Hit {
                name: name.to_owned(),
                description: entry
                    .description
                    .as_ref()
                    .map(|d| d.text.clone())
                    .unwrap_or_default(),
                rank,
            })
            .collect();
        SearchPage { total, hits }
    }

    fn repository_mut(&mut self, repository: &str) -> &mut Repository {
        self.repositories
            .entry(repository.to_owned())
            .or_insert_with(|| Repository {
                name_lowercase: repository.to_lowercase(),
                ..Repository::default()
            })
    }

    fn take_sequence(&mut self) -> u64 {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        sequence
    }
}

impl Repository {
    /// Returns the rank of this repository for a lowercase query, or `None`
    /// when it does not match.
    fn rank(&self, query: &str, match_descriptions: bool) -> Option<Rank> {
        let name = self.name_lowercase.as_str();
        let last_component = name.rsplit('/').next().unwrap_or(name);
        if name == query {
            Some(Rank::ExactName)
        } else if last_component == query {
            Some(Rank::ExactLastComponent)
        } else if name.contains(query) {
            Some(Rank::NameContains)
        } else if match_descriptions
            && self
                .description
                .as_ref()
                .is_some_and(|d| d.lowercase.contains(query))
        {
            Some(Rank::DescriptionContains)
        } else {
            None
        }
    }

    /// Caches `text`, the description of the newest tag `tag`.
    fn set_description(&mut self, tag: &str, text: String) {
        self.description_tag = Some(tag.to_owned());
        self.description = Some(Description {
            lowercase: text.to_lowercase(),
            text,
        });
    }

    /// Recomputes the cached description from all tags. It takes time in
    /// proportion to the tags, so the updates above call it only when the
    /// tag that supplied the description changed.
    fn refresh_description(&mut self) {
        let newest = self
            .tags
            .iter()
            .filter(|(_, tag)| tag.description.is_some())
            .max_by_key(|(_, tag)| tag.sequence);
        let (tag, text) = match newest {
            Some((name, tag)) => (Some(name.clone()), tag.description.clone()),
            None => (None, None),
        };
        self.description_tag = tag;
        self.description = text.map(|text| Description {
            lowercase: text.to_lowercase(),
            text,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(page: &SearchPage) -> Vec<&str> {
        page.hits.iter().map(|hit| hit.name.as_str()).collect()
    }

    fn index_of(repositories: &[&str]) -> Index {
        let mut index = Index::default();
        for repository in repositories {
            index.add_repository(repository);
        }
        index
    }

    #[test]
    fn query_matches_name_substring_ignoring_case() {
        let index = index_of(&["e2e/web-frontend", "e2e/database", "tools/Webhook"]);
        let page = index.search("WEB", false, 1, 25);
        assert_eq!(names(&page), ["e2e/web-frontend", "tools/Webhook"]);
        assert_eq!(page.total, 2);
    }

    #[test]
    fn empty_query_matches_every_repository() {
        let index = index_of(&["b", "a", "c/d"]);
        let page = index.search("", true, 1, 25);
        assert_eq!(names(&page), ["a", "b", "c/d"]);
    }

    #[test]
    fn query_without_match_is_empty() {
        let index = index_of(&["alpine", "debian"]);
        let page = index.search("ubuntu", true, 1, 25);
        assert_eq!(page.total, 0);
        assert!(page.hits.is_empty());
    }

    #[test]
    fn results_sort_by_rank_then_name() {
        let mut index = index_of(&["zeta/web-app", "web", "library/web", "a-web", "docs"]);
        index.set_tag(
            "docs",
            "v1",
            "sha256:d",
            Some("Docs of the web shop".to_owned()),
        );
        let page = index.search("web", true, 1, 25);
        assert_eq!(
            names(&page),
            ["web", "library/web", "a-web", "zeta/web-app", "docs"]
        );
        let ranks: Vec<Rank> = page.hits.iter().map(|hit| hit.rank).collect();
        assert_eq!(
            ranks,
            [
                Rank::ExactName,
                Rank::ExactLastComponent,
                Rank::NameContains,
                Rank::NameContains,
                Rank::DescriptionContains,
            ]
        );
    }

    #[test]
    fn description_match_can_be_turned_off() {
        let mut index = index_of(&["docs"]);
        index.set_tag(
            "docs",
            "v1",
            "sha256:d",
            Some("Docs of the WEB shop".to_owned()),
        );
        assert_eq!(names(&index.search("web", true, 1, 25)), ["docs"]);
        assert!(index.search("web", false, 1, 25).hits.is_empty());
    }

    #[test]
    fn pages_split_the_results() {
        let repositories: Vec<String> = (1..=5).map(|i| format!("repo-{i}")).collect();
        let refs: Vec<&str> = repositories.iter().map(String::as_str).collect();
        let index = index_of(&refs);

        let first = index.search("repo", true, 1, 2);
        assert_eq!(names(&first), ["repo-1", "repo-2"]);
        assert_eq!(first.total, 5);
        let second = index.search("repo", true, 2, 2);
        assert_eq!(names(&second), ["repo-3", "repo-4"]);
        let last = index.search("repo", true, 3, 2);
        assert_eq!(names(&last), ["repo-5"]);
        let past_the_end = index.search("repo", true, 4, 2);
        assert!(past_the_end.hits.is_empty());
        assert_eq!(past_the_end.total, 5);
    }

    #[test]
    fn huge_page_number_is_empty_not_an_overflow() {
        let index = index_of(&["a"]);
        let page = index.search("", true, usize::MAX, 100);
        assert!(page.hits.is_empty());
        assert_eq!(page.total, 1);
    }

    #[test]
    fn description_comes_from_most_recent_tag_with_one() {
        let mut index = Index::default();
        index.set_tag("app", "v1", "sha256:1", Some("first".to_owned()));
        index.set_tag("app", "v2", "sha256:2", Some("second".to_owned()));
        assert_eq!(index.description("app"), Some("second"));

        // A newer tag without a description leaves the last one in place.
        index.set_tag("app", "debug", "sha256:3", None);
        assert_eq!(index.description("app"), Some("second"));

        // Pushing v1 again makes it the most recent.
        assert!(index.touch_tag("app", "v1", "sha256:1"));
        assert_eq!(index.description("app"), Some("first"));

        // Moving v1 to a manifest without a description falls back to v2.
        index.set_tag("app", "v1", "sha256:4", None);
        assert_eq!(index.description("app"), Some("second"));
    }

    #[test]
    fn touch_tag_needs_the_same_digest() {
        let mut index = Index::default();
        index.set_tag("app", "v1", "sha256:1", None);
        assert!(!index.touch_tag("app", "v1", "sha256:2"));
        assert!(!index.touch_tag("app", "v2", "sha256:1"));
        assert!(!index.touch_tag("other", "v1", "sha256:1"));
        assert_eq!(index.tag_digest("app", "v1"), Some("sha256:1"));
    }

    #[test]
    fn page_carries_the_description() {
        let mut index = Index::default();
        index.set_tag("app", "v1", "sha256:1", Some("An app".to_owned()));
        index.add_repository("bare");
        let page = index.search("", true, 1, 25);
        let descriptions: Vec<&str> = page.hits.iter().map(|h| h.description.as_str()).collect();
        assert_eq!(descriptions, ["An app", ""]);
    }

    #[test]
    fn deleted_tag_takes_its_description_away() {
        let mut index = Index::default();
        index.set_tag("app", "v1", "sha256:1", Some("first".to_owned()));
        index.set_tag("app", "v2", "sha256:2", Some("second".to_owned()));
        index.remove_tag("app", "v2");
        assert_eq!(index.description("app"), Some("first"));
        index.remove_tag("app", "v1");
        assert_eq!(index.description("app"), None);
        // The repository stays until it is deleted itself.
        assert!(index.contains("app"));
    }

    #[test]
    fn deleted_repository_disappears() {
        let mut index = index_of(&["keep", "gone"]);
        index.set_tag("gone", "v1", "sha256:1", Some("keep me not".to_owned()));
        assert!(index.remove_repository("gone"));
        assert!(!index.remove_repository("gone"));
        assert_eq!(names(&index.search("", true, 1, 25)), ["keep"]);
        assert!(index.search("keep", true, 1, 25).hits.len() == 1);
        assert_eq!(index.len(), 1);
    }

    #[test]
    fn add_repository_keeps_existing_tags() {
        let mut index = Index::default();
        index.set_tag("app", "v1", "sha256:1", Some("An app".to_owned()));
        index.add_repository("app");
        assert_eq!(index.tag_digest("app", "v1"), Some("sha256:1"));
        assert_eq!(index.description("app"), Some("An app"));
    }

    #[test]
    fn rebuild_keeps_recency_of_unchanged_tags() {
        let mut previous = Index::default();
        previous.set_tag("app", "v2", "sha256:2", Some("second".to_owned()));
        previous.set_tag("app", "v1", "sha256:1", Some("first".to_owned()));
        assert_eq!(previous.description("app"), Some("first"));

        // A rebuild reads tags in name order, so v2 would win on its own.
        let mut rebuilt = Index::default();
        rebuilt.set_tag("app", "v1", "sha256:1", Some("first".to_owned()));
        rebuilt.set_tag("app", "v2", "sha256:2", Some("second".to_owned()));
        assert_eq!(rebuilt.description("app"), Some("second"));
        rebuilt.keep_recency_of(&previous);
        assert_eq!(rebuilt.description("app"), Some("first"));

        // A tag that the previous index missed counts as the most recent,
        // and later changes are more recent still.
        let mut rebuilt = Index::default();
        rebuilt.set_tag("app", "v1", "sha256:1", Some("first".to_owned()));
        rebuilt.set_tag("app", "v3", "sha256:3", Some("third".to_owned()));
        rebuilt.keep_recency_of(&previous);
        assert_eq!(rebuilt.description("app"), Some("third"));
        rebuilt.set_tag("app", "v4", "sha256:4", Some("fourth".to_owned()));
        assert_eq!(rebuilt.description("app"), Some("fourth"));
    }
}
